from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Membership, Team, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(User)
class HubUserAdmin(UserAdmin):
    inlines = [MembershipInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "default_model", "created_at"]
    inlines = [MembershipInline]
