"""WSGI entry point of the benchmark server: the product's application, with the ceiling URLs added.

The settings stay the product's own, read from the environment; two are set here because they are
not environment-driven: the URLconf (bench/ceiling.py) and STATIC_ROOT (a temporary folder the
benchmark collects static files into, given as BENCH_STATIC_ROOT).
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from newsreader.longlived import keep_startup_objects_out_of_collections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsreader.settings")
settings.ROOT_URLCONF = "bench.ceiling"
settings.STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]

application = get_wsgi_application()
keep_startup_objects_out_of_collections()
