from rest_framework.permissions import BasePermission

from ..models import REVIEW_PERMISSION


def is_reviewer(user) -> bool:
    return bool(user and user.is_active and user.has_perm(REVIEW_PERMISSION))


class CanReview(BasePermission):
    """Deciding needs the dedicated `cms_plugin.review_detection` permission."""

    message = "Deciding on detections needs the 'review detection' permission."

    def has_permission(self, request, view) -> bool:
        return is_reviewer(request.user)
