"""The site's django-allauth account adapter: what Newsreader changes about allauth's defaults."""

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .clientaddr import client_address


class AccountAdapter(DefaultAccountAdapter):
    """Keys allauth's rate limits (and its security mails) to the client's address as the site's
    trusted proxies report it, not to the proxy's."""

    def get_client_ip(self, request: HttpRequest) -> str:
        address = client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine the client's IP address.")
        return address
