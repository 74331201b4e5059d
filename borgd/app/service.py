"""The use cases behind every public method: validate, change the store, tell listeners.

The D-Bus adapter only converts types and maps errors; `borgctl apply` and
the tests reach the same behaviour through D-Bus.  Every method validates
all of its arguments before it changes anything.  The use cases live one
module per thing they act on (repositories, profiles, jobs, archives, notifiers); `Service` is
all of them over one shared context, which is what the adapters are given.
"""

from __future__ import annotations

from borgd.app.archives import ArchiveCases
from borgd.app.jobs import JobCases
from borgd.app.notifiers import NotifierCases
from borgd.app.profiles import ProfileCases
from borgd.app.repositories import RepositoryCases


class Service(RepositoryCases, ProfileCases, ArchiveCases, JobCases, NotifierCases):
    """Every use case; construct it with the `UseCaseContext` arguments."""
