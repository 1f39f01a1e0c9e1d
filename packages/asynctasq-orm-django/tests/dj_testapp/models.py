"""Test models; table names carry the per-run suffix ``ASYNCTASQ_DJ_TEST_SUFFIX``."""

from __future__ import annotations

import os
import uuid

from django.db import models

SUFFIX = os.environ.setdefault("ASYNCTASQ_DJ_TEST_SUFFIX", uuid.uuid4().hex[:8])


class User(models.Model):
    email = models.EmailField()
    name = models.CharField(max_length=100)

    class Meta:
        db_table = f"aq_dj_users_{SUFFIX}"


class Product(models.Model):
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        db_table = f"aq_dj_products_{SUFFIX}"


class Note(models.Model):
    """Missing rows become None."""

    _asynctasq_on_missing = "none"
    text = models.CharField(max_length=100)

    class Meta:
        db_table = f"aq_dj_notes_{SUFFIX}"


class Membership(models.Model):
    """A composite primary key (Django 5.2+)."""

    pk = models.CompositePrimaryKey("team", "user_id")
    team = models.CharField(max_length=50)
    user_id = models.IntegerField()
    role = models.CharField(max_length=50)

    class Meta:
        db_table = f"aq_dj_memberships_{SUFFIX}"


class Wide(models.Model):
    class Meta:
        db_table = f"aq_dj_wide_{SUFFIX}"


for _i in range(30):
    models.TextField(default="").contribute_to_class(Wide, f"col_{_i:02d}")

MODELS = [User, Product, Note, Membership, Wide]
