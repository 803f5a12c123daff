from rest_framework.throttling import UserRateThrottle

from ..conf import humanmade_settings


class SubmitThrottle(UserRateThrottle):
    """Limits how many images one user may submit; rate: HUMANMADE['API_SUBMIT_RATE']."""

    scope = "humanmade_submit"

    def get_rate(self) -> str | None:
        return humanmade_settings.API_SUBMIT_RATE
