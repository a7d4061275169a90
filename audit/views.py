from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.teams import require_admin
from audit.models import AuditEntry


@require_GET
@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    entries = AuditEntry.objects.all() if request.user.is_staff else AuditEntry.objects.filter(team=team)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "audit/log.html", {"page": page, "team": team})
