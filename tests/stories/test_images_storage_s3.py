"""Pictures stored in an S3-compatible bucket through django-storages, as several web machines share them.

The bucket is a real S3 API on 127.0.0.1 (moto's server), spoken to over HTTP by boto3 as in production.
"""

import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from stories.images.models import StoryImage
from stories.images.service import choose_story_image, remove_story_image
from tests import pexels_server
from tests.factories import SectionFactory, StoryFactory

pytestmark = pytest.mark.django_db

pexels = pexels_server.pexels
BUCKET = "newsreader-media"
CREDENTIALS = {"aws_access_key_id": "test-access-key", "aws_secret_access_key": "test-secret-key"}


@pytest.fixture
def bucket(settings):
    """A fresh bucket on a local S3 server, made the default storage the way STORAGE_BUCKET does it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # The server keeps its buckets in this process, across servers: start from nothing.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS)
    client.create_bucket(Bucket=BUCKET)
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_ACCESS_KEY_ID = CREDENTIALS["aws_access_key_id"]
    settings.AWS_SECRET_ACCESS_KEY = CREDENTIALS["aws_secret_access_key"]
    settings.AWS_LOCATION = "media"
    settings.AWS_QUERYSTRING_AUTH = False
    settings.AWS_S3_FILE_OVERWRITE = False
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage"}}

    def keys() -> list[str]:
        return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))

    keys.endpoint = endpoint
    yield keys
    server.stop()


@pytest.fixture
def story():
    return StoryFactory(section=SectionFactory(name="Technology", slug="technology"))


def test_chosen_picture_is_stored_in_the_bucket_and_served_from_it(pexels, bucket, story):
    pexels.add_photo(1)

    record = choose_story_image(story_id=story.pk)

    story.refresh_from_db()
    assert record.state == StoryImage.State.CHOSEN
    keys = bucket()
    assert len(keys) == 4 and all(key.startswith(f"media/images/{story.pk}/") for key in keys)
    assert story.image_url.startswith(f"{bucket.endpoint}/{BUCKET}/media/images/{story.pk}/")
    assert "Signature" not in story.image_url, "cached pages must not carry expiring signed links"
    assert story.image_srcset.count(f"{bucket.endpoint}/{BUCKET}/media/images/") == 3


def test_bad_picture_leaves_nothing_in_the_bucket(pexels, bucket, story):
    pexels.add_photo(1, body=b"<!doctype html><html>nope</html>")

    record = choose_story_image(story_id=story.pk)

    assert "an HTML page" in record.reason
    assert bucket() == []


def test_removed_picture_is_deleted_from_the_bucket(pexels, bucket, story, django_capture_on_commit_callbacks):
    pexels.add_photo(1)
    choose_story_image(story_id=story.pk)
    assert bucket()

    with django_capture_on_commit_callbacks(execute=True):
        remove_story_image(story=story)

    assert bucket() == []


def test_bucket_that_refuses_writes_leaves_the_story_without_a_picture(pexels, bucket, story, settings):
    pexels.add_photo(1)
    settings.AWS_STORAGE_BUCKET_NAME = "no-such-bucket"
    settings.STORAGES = {**settings.STORAGES}  # a fresh storage object with the new bucket

    record = choose_story_image(story_id=story.pk)

    assert record.state == StoryImage.State.NONE
    assert "could not store the resized picture" in record.reason
    assert record.retry_at is not None
    assert bucket() == []
