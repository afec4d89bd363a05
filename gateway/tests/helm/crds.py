"""Schemas for the two custom resources the chart renders, which
kubernetes-validate does not carry: the Prometheus operator's ServiceMonitor
(monitoring.coreos.com/v1) and Gateway API's HTTPRoute
(gateway.networking.k8s.io/v1).

These are not the CRDs (which are not vendored here): each is the part of
the CRD's openAPIV3Schema that the chart can emit, written from the CRDs'
field definitions (prometheus-operator's ServiceMonitor v1, Gateway API
v1.6's HTTPRoute), closed with additionalProperties: false at every level the
chart writes, so a misspelt or misplaced field fails here as the API server
would refuse it. Fields the chart passes through from values as they are
(relabelings) are left open.
"""

from __future__ import annotations

from typing import Any

import jsonschema

_STRING = {"type": "string"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _STRING,
        "namespace": _STRING,
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
# Prometheus durations (monitoring.coreos.com Duration).
_PROM_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
# Gateway API durations (GEP-2257).
_GW_DURATION = {"type": "string", "pattern": "^([0-9]{1,5}(h|m|s|ms)){1,4}$"}

SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector"],
            "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": _STRING},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": _STRING,
                            "path": _STRING,
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": _PROM_DURATION,
                            "scrapeTimeout": _PROM_DURATION,
                            "authorization": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "type": _STRING,
                                    "credentials": {
                                        "type": "object",
                                        "required": ["key"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "name": _STRING,
                                            "key": _STRING,
                                            "optional": {"type": "boolean"},
                                        },
                                    },
                                },
                            },
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}

HTTP_ROUTE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "group": _STRING,
                            "kind": _STRING,
                            "name": {"type": "string", "minLength": 1, "maxLength": 253},
                            "namespace": _STRING,
                            "sectionName": _STRING,
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        },
                    },
                },
                "hostnames": {"type": "array", "maxItems": 16, "items": _STRING},
                "rules": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                                                "value": {"type": "string", "maxLength": 1024},
                                            },
                                        },
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "name": _STRING,
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "weight": {"type": "integer", "minimum": 0},
                                    },
                                },
                            },
                            "timeouts": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"request": _GW_DURATION, "backendRequest": _GW_DURATION},
                            },
                        },
                    },
                },
            },
        },
    },
}

SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTP_ROUTE,
}


def validate_custom(obj: dict[str, Any]) -> bool:
    """Validates a custom resource the chart renders; False if it is not one."""
    schema = SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        return False
    jsonschema.Draft7Validator(schema).validate(obj)
    return True
