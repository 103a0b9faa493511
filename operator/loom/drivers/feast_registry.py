"""What the Feast registry holds for one feature view name, as plain values: whose view it is and
which version of its definition (the tags Loom writes), read without changing anything."""

from __future__ import annotations

from dataclasses import dataclass

from loom.domain.feature_views import TAG_OWNER, TAG_VERSION
from loom.drivers.feast_store import StoreSettings, get_view, open_store
from loom.drivers.host import out_of_process


@dataclass(frozen=True)
class RegisteredView:
    owner: str | None  # <namespace>/<FeatureSet name> of the FeatureSet that applied it
    version: str | None


@out_of_process()
def registered_view(settings: StoreSettings, name: str) -> RegisteredView | None:
    """The view of that name in the settings' project, or None when the registry has none."""
    view = get_view(open_store(settings), name)
    if view is None:
        return None
    return RegisteredView(view.tags.get(TAG_OWNER), view.tags.get(TAG_VERSION))
