from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api.views import ApiTokenViewSet, me

router = SimpleRouter()
router.register("tokens", ApiTokenViewSet, basename="token")
urlpatterns = [path("me/", me, name="me"), *router.urls]
