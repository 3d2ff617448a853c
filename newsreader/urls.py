from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.sitemaps.views import sitemap
from django.templatetags.static import static as static_url
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from newsreader.observability import metrics_view
from stories.admin import system_status_view
from stories.sitemaps import sitemaps
from stories.views import robots_txt

# The admin login goes through allauth's, with the same rate limits.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = f"{settings.SITE_NAME} administration"
admin.site.site_title = settings.SITE_NAME

urlpatterns = [
    path("admin/status/", admin.site.admin_view(system_status_view), name="admin_system_status"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("comments/", include("comments.urls")),
    path("sitemap.xml", sitemap, {"sitemaps": sitemaps}, name="sitemap"),
    path("robots.txt", robots_txt, name="robots_txt"),
    # Browsers ask for /favicon.ico whatever the page links; not permanent, as the static name changes with the file.
    path("favicon.ico", RedirectView.as_view(url=lazy(static_url, str)("favicon.ico")), name="favicon"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("follows.urls")),
    path("", include("stories.urls")),
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]
