"""Test models; table names carry the per-run suffix ``ASYNCTASQ_TT_TEST_SUFFIX``."""

from __future__ import annotations

import os
import uuid
from typing import ClassVar

from tortoise import fields
from tortoise.models import Model

SUFFIX = os.environ.setdefault("ASYNCTASQ_TT_TEST_SUFFIX", uuid.uuid4().hex[:8])


class User(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=255)
    name = fields.CharField(max_length=100)

    class Meta:
        table = f"aq_tt_users_{SUFFIX}"


class Post(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=200)
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="posts"
    )

    class Meta:
        table = f"aq_tt_posts_{SUFFIX}"


class Note(Model):
    _asynctasq_on_missing: ClassVar[str] = "none"
    id = fields.IntField(primary_key=True)
    text = fields.CharField(max_length=100)

    class Meta:
        table = f"aq_tt_notes_{SUFFIX}"


class Wide(Model):
    id = fields.IntField(primary_key=True)

    class Meta:
        table = f"aq_tt_wide_{SUFFIX}"


MODELS = [Post, User, Note]
