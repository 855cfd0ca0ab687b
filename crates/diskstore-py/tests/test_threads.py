"""Many threads on one store object."""

from __future__ import annotations

import threading

from diskstore import DiskStore
from diskstore.config import BaseConfig


def run_threads(n: int, target: object) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()


def test_counters_in_transactions_are_exact(db: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    store["n"] = 0
    errors: list[BaseException] = []

    def work(_: int) -> None:
        try:
            for _ in range(50):
                with store.transact():
                    store["n"] = store["n"] + 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    run_threads(6, work)
    assert errors == []
    assert store["n"] == 300


def test_readers_and_writers_together(db: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(100):
                store[f"{i}-{j}"] = j
                assert store[f"{i}-{j}"] == j
                len(store)
                list(store.keys())[:1]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    run_threads(4, work)
    assert errors == []
    assert len(store) == 400


def test_a_store_shared_with_user_code_that_uses_it_in_load(db: str) -> None:
    # load_data runs after the engine call, so it may use the very store it loads for, from
    # several threads at once: read it, and write to it.
    class Reentrant(BaseConfig):
        store: DiskStore | None = None

        def load_data(self, data: tuple) -> object:
            s = self.store
            assert s is not None
            key = f"seen-{threading.get_ident()}"
            s[key] = threading.get_ident()  # a write from inside load
            return (data[1], "a" in s, len(s) >= 1)

    config = Reentrant()
    store = DiskStore(db, config=config)
    config.store = store
    store["a"] = 1
    assert store["a"] == (1, True, True)
    errors: list[BaseException] = []

    def work(_: int) -> None:
        try:
            for _ in range(20):
                assert store["a"] == (1, True, True)
                assert store.get("a") == (1, True, True)
                with store.transact():
                    store["a"] = 1
                    assert store["a"] == (1, True, True)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    run_threads(4, work)
    assert errors == []
    assert sum(1 for k in store if str(k).startswith("seen-")) >= 2  # main and workers
