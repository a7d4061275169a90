import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.teams import require_admin
from audit.display import readable
from audit.forms import AuditFiltersForm
from audit.models import AuditEntry
from audit.spreadsheet import streamed

ENTRIES_PER_PAGE = 50


def _entries(request: HttpRequest) -> tuple[AuditFiltersForm, object]:
    team = require_admin(request)
    entries = AuditEntry.objects.all() if request.user.is_staff else AuditEntry.objects.filter(team=team)
    form = AuditFiltersForm(request.GET, entries=entries)
    form.is_valid()
    return form, form.apply(entries)


@require_GET
@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    form, entries = _entries(request)
    page = Paginator(entries.select_related("team"), ENTRIES_PER_PAGE).get_page(
        form.cleaned_data.get("page") if "page" not in form.errors else 1
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "rows": readable(page), "query": query.urlencode()}
    return render(request, "audit/log.html", context)


@require_GET
@login_required
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered entries, oldest first, named and labelled as on the page."""
    _, entries = _entries(request)
    header = [
        "time",
        "who",
        "team",
        "action",
        "what",
        "object_type",
        "object_id",
        "object",
        "before",
        "after",
    ]

    def rows():
        chunk = []
        for entry in entries.select_related("team").order_by("created_at", "pk").iterator(chunk_size=500):
            chunk.append(entry)
            if len(chunk) == 500:
                yield from _lines(chunk)
                chunk = []
        yield from _lines(chunk)

    return streamed(header, rows(), "llmhub-audit.csv")


def _lines(entries: list[AuditEntry]):
    for row in readable(entries):
        entry = row.entry
        yield [
            entry.created_at.isoformat(),
            entry.actor_name,
            entry.team.name if entry.team else "",
            entry.action,
            row.action,
            entry.object_type,
            entry.object_id,
            row.object_name,
            json.dumps(entry.before, sort_keys=True),
            json.dumps(entry.after, sort_keys=True),
        ]
