"""A plain model and its publishing twin (same fields, same filter)."""

from __future__ import annotations

from django.db import models

import rtbridge


class PlainItem(models.Model):
    list_id = models.IntegerField()
    text = models.CharField(max_length=200)
    done = models.BooleanField(default=False)


class LiveItem(rtbridge.SelfPublishModel, models.Model):
    list_id = models.IntegerField()
    text = models.CharField(max_length=200)
    done = models.BooleanField(default=False)

    class RTBridge:
        fields = ["list_id", "text", "done"]
        filters = ["list_id"]
