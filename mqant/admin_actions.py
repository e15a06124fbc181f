"""Django admin actions that act on live connections through the channel layer, the same
path modules use: close a connection, send it a message."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from mqant import owners
from mqant.ops import Close
from mqant.session import encode_body


class MessageForm(forms.Form):
    """What an admin types to send: a topic and a text (sent as it is)."""

    topic = forms.CharField(initial="System/OnMessage", max_length=200)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)


def close_channels(channels: Iterable[str]) -> int:
    """Close the connections on those channels; returns how many were asked."""
    count = 0
    for channel in channels:
        async_to_sync(owners.session_op_nr)(channel, Close())
        count += 1
    return count


def send_to_channels(channels: Iterable[str], topic: str, text: str) -> int:
    count = 0
    for channel in channels:
        async_to_sync(owners.deliver)(channel, topic, encode_body(text))
        count += 1
    return count


def message_action(
    description: str,
    send: Callable[[QuerySet[Any], str, str], int],
    topic: str = "System/OnMessage",
) -> Callable[[admin.ModelAdmin[Any], HttpRequest, QuerySet[Any]], HttpResponse | None]:
    """An admin action that asks for a topic (``topic`` at first) and a text, then calls
    ``send(rows, topic, text)``, which returns how many recipients it reached."""

    def action(
        model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Model]
    ) -> HttpResponse | None:
        data = request.POST if "topic" in request.POST else None
        form = MessageForm(data, initial={"topic": topic})
        if form.is_valid():
            count = send(queryset, form.cleaned_data["topic"], form.cleaned_data["text"])
            model_admin.message_user(request, f"Sent to {count}.", messages.SUCCESS)
            return None
        context = {
            **model_admin.admin_site.each_context(request),
            "title": description,
            "form": form,
            "queryset": queryset,
            "action": request.POST.get("action", ""),
            "opts": model_admin.model._meta,
        }
        return TemplateResponse(request, "admin/mqant/message_form.html", context)

    action.short_description = description  # type: ignore[attr-defined]
    action.__name__ = description.lower().replace(" ", "_")
    return action
