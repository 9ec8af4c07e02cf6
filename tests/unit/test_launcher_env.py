"""The environment pointsman.launcher gives tritonserver and, through it, every model stub."""

from __future__ import annotations

from pointsman.launcher.tritonserver import HUGE_PAGES, server_env, with_huge_pages


def test_malloc_asks_for_huge_pages_beside_the_users_own_tunables():
    assert with_huge_pages("") == HUGE_PAGES == "glibc.malloc.hugetlb=1"
    assert with_huge_pages("glibc.malloc.arena_max=2") == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


def test_a_users_own_huge_page_setting_stands():
    assert with_huge_pages("glibc.malloc.hugetlb=0") == "glibc.malloc.hugetlb=0"


def test_the_server_gets_the_setting(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert server_env()["GLIBC_TUNABLES"] == HUGE_PAGES
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")
    assert server_env()["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"
