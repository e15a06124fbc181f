"""Stored sessions (mqant's StorageHandler, on the ORM) and the live connections of every
gate process."""

from django.db import models


class StoredSession(models.Model):
    """The settings of a user's session, kept between connections until ``expires_at``."""

    user_id = models.CharField(max_length=150, primary_key=True)
    settings = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "stored session"

    def __str__(self) -> str:
        return self.user_id


class GateProcess(models.Model):
    """A gate process, alive while its heartbeat is fresh."""

    gate_id = models.CharField(max_length=64, primary_key=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "gate process"
        verbose_name_plural = "gate processes"

    def __str__(self) -> str:
        return self.gate_id


class LiveConnection(models.Model):
    """A client connection, from CONNECT until it ends (or its gate is found dead)."""

    session_id = models.CharField(max_length=32, primary_key=True)
    user_id = models.CharField(max_length=150, blank=True, db_index=True)
    ip = models.CharField(max_length=64, blank=True)
    network = models.CharField(max_length=16)
    gate = models.ForeignKey(GateProcess, on_delete=models.CASCADE, related_name="connections")
    channel = models.CharField(max_length=200)
    settings = models.JSONField(default=dict)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()

    class Meta:
        verbose_name = "live connection"

    def __str__(self) -> str:
        return f"{self.session_id} ({self.user_id or 'guest'})"
