"""Django admin for providers. Credentials are never shown: only the mask, read-only."""

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from audit import log
from providers import network
from providers.models import Price, Provider, ProviderModel


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
    extra = 0
    fields = ["model_id", "display_name", "context_window", "max_output", "supports_streaming"]
    show_change_link = True


class ProviderAdminForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = ["id", "display_name", "enabled", "endpoint", "default_model"]
        help_texts = {
            "endpoint": "A saved key is only sent to the endpoint it was saved for: after changing it, "
            "enter the key again in Settings → Providers."
        }

    def clean_endpoint(self) -> str:
        endpoint = self.cleaned_data["endpoint"].rstrip("/")
        if endpoint != self.instance.endpoint:
            try:  # a site admin may use the hub's own network, never the hub itself
                network.check_endpoint(endpoint, private_network=True)
            except network.AddressRefused as refused:
                raise forms.ValidationError(refused.reason) from None
        return endpoint


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    list_display = ["id", "display_name", "kind", "enabled", "masked_key", "last_validated_at"]
    list_filter = ["enabled", "kind"]
    # credentials_encrypted is not editable and never listed here: even its ciphertext stays out.
    fields = [
        "id",
        "display_name",
        "kind",
        "dialect",
        "enabled",
        "endpoint",
        "private_network",
        "endpoint_set_by",
        "default_model",
        "masked_key",
        "last_validated_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "kind",
        "dialect",
        "private_network",
        "endpoint_set_by",
        "masked_key",
        "last_validated_at",
        "created_at",
        "updated_at",
    ]
    inlines = [ProviderModelInline]

    def save_model(self, request: HttpRequest, obj: Provider, form: forms.ModelForm, change: bool) -> None:
        if "endpoint" in form.changed_data:
            obj.private_network, obj.endpoint_set_by = True, request.user
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            before = {name: form.initial.get(name) for name in form.changed_data}
            after = {name: form.cleaned_data.get(name) for name in form.changed_data}
            log.record(request.user, "provider_updated", obj, before=before, after=after)

    @admin.display(description="API key")
    def masked_key(self, provider: Provider) -> str:
        return provider.masked_key() or "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # providers are set up with their credentials: Settings or `provider_add`


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0
    fields = ["input_per_1m", "output_per_1m", "source", "valid_from", "checked_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ProviderModel)
class ProviderModelAdmin(admin.ModelAdmin):
    list_display = ["id", "display_name", "context_window", "max_output", "current_price"]
    list_filter = ["provider"]
    readonly_fields = ["id", "provider", "model_id"]
    inlines = [PriceInline]

    @admin.display(description="Price per 1M tokens (in / out)")
    def current_price(self, model: ProviderModel) -> str:
        price = model.current_price()
        return f"${price.input_per_1m} / ${price.output_per_1m}" if price else "unpriced"


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """Prices are history: an override is a new row from a moment on; rows are never edited."""

    list_display = ["model_ref", "input_per_1m", "output_per_1m", "source", "valid_from", "checked_at"]
    list_filter = ["source"]
    fields = ["model", "input_per_1m", "output_per_1m", "valid_from"]

    def save_model(self, request: HttpRequest, obj: Price, form: object, change: bool) -> None:
        obj.source = Price.Source.ADMIN
        obj.model_ref = obj.model.id
        super().save_model(request, obj, form, change)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
