"""The forwarding rules as the console edits them (A7): the whole list in force (`forward.rules`,
the main file's rules or the console's) is written to the console layer with one rule added,
changed or removed, since a list in the console layer replaces the main file's whole. The schema
checks the result through the writer; its refusals about the edited rule go next to its fields."""

from __future__ import annotations

from typing import Any

from flask import request

from appliance.config import Config, ForwardRule
from appliance.config.checks import Key
from appliance.web.forms import choices, text
from appliance.web.forward.forms import RuleForm
from appliance.web.setup.forms import listed
from appliance.web.setup.saving import FieldOf

LIST_FIELDS = ("calling_ae_titles", "modalities", "sop_classes", "study_descriptions")
RULE_FIELDS = ("name", "destination", "enabled", *LIST_FIELDS)


def rule_at(config: Config, number: int) -> ForwardRule | None:
    """The rule shown as number `number` (from 1) in the list, None when there is none."""
    return config.forward.rules[number - 1] if 0 < number <= len(config.forward.rules) else None


def form_for(config: Config, rule: ForwardRule | None) -> RuleForm:
    """The form of `rule` (a new one when None), its destinations being the configured peers."""
    form = RuleForm(data=current_values(rule)) if request.method == "GET" else RuleForm()
    titles = [peer.ae_title for peer in config.peers]
    if form.destination.data and form.destination.data not in titles:
        titles.append(str(form.destination.data))  # a rule naming a peer removed since: shown, refused at save
    form.destination.choices = choices([(title, peer_label(config, title)) for title in titles])
    return form


def current_values(rule: ForwardRule | None) -> dict[str, Any]:
    if rule is None:
        return {"enabled": True}
    values: dict[str, Any] = {"name": rule.name, "destination": rule.destination, "enabled": rule.enabled,
                              "original": rule.name}  # fmt: skip
    values.update({name: ", ".join(getattr(rule, name)) for name in LIST_FIELDS if name != "study_descriptions"})
    values["study_descriptions"] = "\n".join(rule.study_descriptions)
    return values


def peer_label(config: Config, ae_title: str) -> str:
    peer = config.peer(ae_title)
    return f"{ae_title} — {peer.description}" if peer is not None and peer.description else ae_title


def rule_document(rule: ForwardRule) -> dict[str, Any]:
    """A rule as the configuration writes it (empty criteria left out: they match anything)."""
    document: dict[str, Any] = {"name": rule.name, "destination": rule.destination}
    if not rule.enabled:
        document["enabled"] = False
    document.update({name: list(getattr(rule, name)) for name in LIST_FIELDS if getattr(rule, name)})
    return document


def form_document(form: RuleForm) -> dict[str, Any]:
    """The rule the form describes, as the configuration writes it."""
    document: dict[str, Any] = {"name": text(form.name), "destination": text(form.destination)}
    if not form.enabled.data:
        document["enabled"] = False
    lists = {name: listed(text(getattr(form, name))) for name in LIST_FIELDS if name != "study_descriptions"}
    lists["study_descriptions"] = [line.strip() for line in text(form.study_descriptions).splitlines() if line.strip()]
    document.update({name: values for name, values in lists.items() if values})
    return document


def changes(config: Config, number: int, form: RuleForm) -> tuple[dict[str, Any], int]:
    """The new `forward.rules` list with the form's rule at `number` (appended when 0), and the
    rule's position in that list."""
    rules = [rule_document(rule) for rule in config.forward.rules]
    position = number - 1 if number else len(rules)
    rules[position : position + 1] = [form_document(form)]
    return {"forward": {"rules": rules}}, position


def removal(config: Config, number: int) -> dict[str, Any]:
    """The `forward.rules` list without the rule at `number`."""
    rules = [rule_document(rule) for position, rule in enumerate(config.forward.rules, 1) if position != number]
    return {"forward": {"rules": rules}}


def field_of(position: int) -> FieldOf:
    """Problems of the edited rule go to its fields (an entry of a list to the list's field)."""

    def field(key: Key) -> str | None:
        if key[:3] != ("forward", "rules", position):
            return None
        return str(key[3]) if len(key) > 3 and key[3] in RULE_FIELDS else "name"

    return field
