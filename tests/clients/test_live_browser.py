"""Headless Chromium: a live list kept correct while others change rows, and presence across two users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.testapp.models import TodoItem, TodoList

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 20_000  # generous: CI machines are shared and slow at times


def logged_in(browser: Any, site: Any, user: User) -> Any:
    """Return a browser context with ``user``'s Django session cookie (as after logging in)."""
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": site.http_url}]
    )
    return context


def open_page(context: Any, url: str, errors: list[str]) -> Any:
    """Open ``url``, collecting page errors and console errors into ``errors``."""
    page = context.new_page()

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", on_console)
    page.goto(url)
    return page


def rows(page: Any) -> list[str]:
    return page.eval_on_selector_all("#rows li", "items => items.map((item) => item.textContent)")


def wait_rows(page: Any, expected: list[str]) -> None:
    """Wait until the page shows exactly ``expected``; fail showing what it shows."""
    try:
        page.wait_for_function(
            "expected => JSON.stringify([...document.querySelectorAll('#rows li')]"
            ".map((item) => item.textContent)) === JSON.stringify(expected)",
            arg=expected,
            timeout=TIMEOUT,
        )
    except Exception as exc:
        raise AssertionError(f"the page shows {rows(page)}, expected {expected}") from exc


@pytest.fixture
def ann() -> Iterator[User]:
    yield User.objects.create_user("ann")


def test_live_list_stays_correct_while_python_and_another_tab_change_rows(
    site: Any, browser: Any, ann: User
) -> None:
    groceries = TodoList.objects.create(name="ann groceries", owner=ann)
    other = TodoList.objects.create(name="ann other", owner=ann)
    milk = TodoItem.objects.create(todo_list=groceries, text="milk")
    context = logged_in(browser, site, ann)
    errors: list[str] = []
    try:
        page = open_page(context, f"{site.http_url}/live/?list={groceries.pk}", errors)
        page.wait_for_function("document.body.dataset.live === 'ready'", timeout=TIMEOUT)
        assert rows(page) == ["milk"]

        # Another process: Python saves through the model mixin (created, updated, left, entered).
        eggs = TodoItem.objects.create(todo_list=groceries, text="eggs")
        wait_rows(page, ["milk", "eggs"])
        milk.done = True
        milk.save()
        wait_rows(page, ["milk (done)", "eggs"])
        eggs.todo_list = other  # moves out of the filter
        eggs.save()
        wait_rows(page, ["milk (done)"])
        bread = TodoItem.objects.create(todo_list=other, text="bread")
        bread.todo_list = groceries  # moves in
        bread.save()
        wait_rows(page, ["milk (done)", "bread"])

        # Another tab of the same user writes through the routers.
        writer = open_page(context, f"{site.http_url}/live/", errors)
        writer.wait_for_function("window.rt && window.rt.state === 'connected'", timeout=TIMEOUT)
        jam = writer.evaluate(
            "list => rt.create('todo-item', {todo_list_id: list, text: 'jam'}).then(i => i.id)",
            groceries.pk,
        )
        wait_rows(page, ["milk (done)", "bread", "jam"])
        writer.evaluate("id => rt.update('todo-item', {id, text: 'apricot jam'})", jam)
        wait_rows(page, ["milk (done)", "bread", "apricot jam"])
        writer.evaluate(
            "args => rt.update('todo-item', {id: args[0], todo_list_id: args[1]})",
            [bread.pk, other.pk],
        )
        wait_rows(page, ["milk (done)", "apricot jam"])
        writer.evaluate("id => rt.delete('todo-item', {id})", jam)
        wait_rows(page, ["milk (done)"])

        # The page's own write: the server does not echo it, the reply is applied.
        page.evaluate(
            "list => rt.create('todo-item', {todo_list_id: list, text: 'tea'})", groceries.pk
        )
        wait_rows(page, ["milk (done)", "tea"])
        milk.delete()
        wait_rows(page, ["tea"])
        assert [item.text for item in TodoItem.objects.filter(todo_list=groceries)] == ["tea"]
        assert errors == []
    finally:
        context.close()


def test_live_list_of_a_list_the_user_may_not_see_is_refused(
    site: Any, browser: Any, ann: User
) -> None:
    bob = User.objects.create_user("bob")
    bobs = TodoList.objects.create(name="bob's", owner=bob)
    TodoItem.objects.create(todo_list=bobs, text="secret")
    context = logged_in(browser, site, ann)
    try:
        page = open_page(context, f"{site.http_url}/live/?list={bobs.pk}", [])
        page.wait_for_function("document.body.dataset.live === 'ready'", timeout=TIMEOUT)
        assert rows(page) == [], "the router shows Ann none of Bob's items"
    finally:
        context.close()


def test_presence_user_b_sees_a_join_and_leave(site: Any, browser: Any, ann: User) -> None:
    bob = User.objects.create_user("bob")
    ann_context = logged_in(browser, site, ann)
    bob_context = logged_in(browser, site, bob)
    errors: list[str] = []
    try:
        url = f"{site.http_url}/live/?item=7"
        ann_page = open_page(ann_context, url, errors)
        ann_page.wait_for_function("document.body.dataset.joined === 'yes'", timeout=TIMEOUT)
        assert ann_page.text_content("#members") == "ann"

        bob_page = open_page(bob_context, url, errors)
        bob_page.wait_for_function("document.body.dataset.joined === 'yes'", timeout=TIMEOUT)
        bob_page.wait_for_function(
            "document.getElementById('members').textContent === 'ann,bob'", timeout=TIMEOUT
        )
        ann_page.wait_for_function(
            "document.getElementById('members').textContent === 'ann,bob'", timeout=TIMEOUT
        )

        # A second tab of Ann's, closed again: Bob still sees Ann (per user, not per tab).
        extra = open_page(ann_context, url, errors)
        extra.wait_for_function("document.body.dataset.joined === 'yes'", timeout=TIMEOUT)
        extra.close()
        bob_page.wait_for_timeout(300)
        assert bob_page.text_content("#members") == "ann,bob"

        ann_page.close()  # Ann closes her last tab
        bob_page.wait_for_function(
            "document.getElementById('members').textContent === 'bob'", timeout=TIMEOUT
        )
        assert errors == []
    finally:
        ann_context.close()
        bob_context.close()


def test_anonymous_visitor_is_refused_presence_with_djangos_code(site: Any, browser: Any) -> None:
    context = browser.new_context()
    try:
        page = open_page(context, f"{site.http_url}/live/?item=7", [])
        page.wait_for_function(
            "(document.body.dataset.joined || '').startsWith('error')", timeout=TIMEOUT
        )
        assert page.evaluate("document.body.dataset.joined") == "error login_required"
    finally:
        context.close()
