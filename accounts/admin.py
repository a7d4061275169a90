"""The Django admin for people and teams; every membership and role change it saves is audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from accounts import members
from accounts.models import Membership, Team, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


class AuditedMemberships:
    """Audits what a membership inline saved: added, role changed, removed."""

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        roles_before = {f.instance.pk: f.initial.get("role") for f in formset.forms if f.instance.pk}
        for removed in formset.deleted_forms:
            if removed.instance.pk:
                members.record_removed(request.user, removed.instance)
        super().save_formset(request, form, formset, change)
        for membership in formset.new_objects:
            members.record_added(request.user, membership)
        for membership, fields in formset.changed_objects:
            if "role" in fields:
                members.record_role_changed(request.user, membership, roles_before.get(membership.pk, ""))


@admin.register(User)
class HubUserAdmin(AuditedMemberships, UserAdmin):
    inlines = [MembershipInline]

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        before = {name: form.initial.get(name, False) for name in members.ROLE_FIELDS} if change else {}
        super().save_model(request, obj, form, change)
        members.record_user_roles(request.user, obj, before)


@admin.register(Team)
class TeamAdmin(AuditedMemberships, admin.ModelAdmin):
    list_display = ["name", "default_model", "created_at"]
    inlines = [MembershipInline]
