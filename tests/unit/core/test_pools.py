from __future__ import annotations

import functools
import hashlib
import itertools
import random
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_base_cs_url.core import (
    STRATEGY_NAMES,
    LoginContext,
    Pool,
    Strategy,
    rendezvous_pick,
    rendezvous_score,
)

A, B, C = "https://a.example", "https://b.example", "https://c.example"


def test_strategy_names() -> None:
    assert STRATEGY_NAMES == ("hash", "round_robin")
    assert Pool((A,)).strategy is Strategy.HASH


class TestValidation:
    def test_empty(self) -> None:
        with pytest.raises(ValueError, match=r"^a pool needs at least one member$"):
            Pool(())

    def test_duplicates(self) -> None:
        with pytest.raises(ValueError, match=r"^pool members must be distinct: "):
            Pool((A, B, A))

    def test_rendezvous_pick_empty(self) -> None:
        with pytest.raises(ValueError, match=r"^cannot pick from an empty pool$"):
            rendezvous_pick((), "@a:b")


class TestRoundRobin:
    def test_cycles_in_order(self) -> None:
        pool = Pool((A, B, C), Strategy.ROUND_ROBIN)
        ctx = LoginContext(user_id="@alice:hs")
        assert [pool.pick(ctx) for _ in range(7)] == [A, B, C, A, B, C, A]

    def test_ignores_the_user(self) -> None:
        pool = Pool((A, B), Strategy.ROUND_ROBIN)
        assert [pool.pick(LoginContext(user_id="@same:hs")) for _ in range(4)] == [A, B, A, B]

    def test_counter_is_per_pool(self) -> None:
        one, two = Pool((A, B), Strategy.ROUND_ROBIN), Pool((A, B), Strategy.ROUND_ROBIN)
        assert one.pick(LoginContext()) == A
        assert one.pick(LoginContext()) == B
        assert two.pick(LoginContext()) == A

    def test_pools_compare_by_config_not_by_counter(self) -> None:
        one, two = Pool((A, B), Strategy.ROUND_ROBIN), Pool((A, B), Strategy.ROUND_ROBIN)
        one.pick(LoginContext())
        assert one == two
        assert Pool((A, B)) != one

    def test_thread_safe(self) -> None:
        pool = Pool((A, B, C), Strategy.ROUND_ROBIN)
        threads, per_thread = 8, 3_000
        results: list[list[str]] = [[] for _ in range(threads)]
        barrier = threading.Barrier(threads)

        def work(out: list[str]) -> None:
            barrier.wait()
            out.extend(pool.pick(LoginContext()) for _ in range(per_thread))

        workers = [threading.Thread(target=work, args=(r,)) for r in results]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        counts = Counter(itertools.chain.from_iterable(results))
        # No counter value was handed out twice or skipped: the spread is exact.
        assert counts == {A: 8_000, B: 8_000, C: 8_000}


class TestHash:
    def test_score_is_blake2b_of_member_nul_key(self) -> None:
        expected = hashlib.blake2b(b"https://a.example\0@alice:hs", digest_size=8).digest()
        assert rendezvous_score(A, "@alice:hs") == expected

    def test_score_is_pinned(self) -> None:
        # Changing the hash would move every user of every pool: do it only on purpose.
        assert rendezvous_score(A, "@alice:hs").hex() == "acb6ddac4217b74c"
        picks = [rendezvous_pick((A, B, C), f"@user{i}:hs") for i in range(6)]
        assert picks == [B, B, C, B, B, B]

    def test_sticky(self) -> None:
        pool = Pool((A, B, C))
        for i in range(200):
            ctx = LoginContext(user_id=f"@user{i}:hs", client_ip=f"10.0.0.{i}")
            first = pool.pick(ctx)
            assert all(pool.pick(ctx) == first for _ in range(5))
            # A fresh pool (another worker, another process) agrees.
            assert Pool((A, B, C)).pick(ctx) == first

    def test_independent_of_member_order(self) -> None:
        for i in range(200):
            key = f"@user{i}:hs"
            picks = {rendezvous_pick(p, key) for p in itertools.permutations((A, B, C))}
            assert len(picks) == 1

    def test_key_fallbacks(self) -> None:
        pool = Pool((A, B, C))
        assert pool.pick(LoginContext(user_id="@Alice:HS")) == rendezvous_pick(
            (A, B, C), "@alice:hs"
        )
        assert pool.pick(LoginContext(localpart="bob")) == rendezvous_pick((A, B, C), "bob")
        assert pool.pick(LoginContext(address="c@d.e")) == rendezvous_pick((A, B, C), "c@d.e")
        assert pool.pick(LoginContext(client_ip="::1")) == rendezvous_pick((A, B, C), "::1")

    def test_no_key_falls_back_to_round_robin(self) -> None:
        pool = Pool((A, B, C))
        ctx = LoginContext(login_type="m.login.password", device_id="DEV")
        assert [pool.pick(ctx) for _ in range(4)] == [A, B, C, A]

    def test_lone_surrogate_in_key_does_not_crash(self) -> None:
        assert Pool((A, B)).pick(LoginContext(user_id="@\ud800:hs")) in (A, B)

    def test_generic_members_hash_by_str(self) -> None:
        pool: Pool[int] = Pool((1, 2, 3))
        assert pool.pick(LoginContext(user_id="@a:b")) == int(
            rendezvous_pick(("1", "2", "3"), "@a:b")
        )


# --- distribution properties over 100k users --------------------------------------------

N_USERS = 100_000


@functools.lru_cache(maxsize=4)
def user_ids(seed: int) -> tuple[str, ...]:
    rng = random.Random(seed)
    return tuple(f"@user{i}-{rng.getrandbits(32):08x}:server" for i in range(N_USERS))


def assign(scores: dict[str, list[bytes]], members: list[str]) -> list[str]:
    """Rendezvous assignment of every user, from precomputed per-member score columns."""
    columns = [scores[m] for m in members]
    return [members[row.index(max(row))] for row in zip(*columns, strict=True)]


def shares(assignment: list[str], members: list[str]) -> dict[str, float]:
    counts = Counter(assignment)
    return {m: counts[m] / len(assignment) for m in members}


hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,15}\.[a-z]{2,6}", fullmatch=True)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=2, max_value=6),
    hosts=st.lists(hostnames, min_size=7, max_size=7, unique=True),
    seed=st.integers(min_value=0, max_value=2**32),
    removed_index=st.integers(min_value=0, max_value=5),
)
def test_hash_pool_balance_and_minimal_disruption(
    n: int, hosts: list[str], seed: int, removed_index: int
) -> None:
    keys = user_ids(seed)
    grown = [f"https://{h}" for h in hosts[: n + 1]]
    members, added = grown[:n], grown[n]
    removed = members[removed_index % n]
    shrunk = [m for m in members if m != removed]

    # One score column per member, shared by the three assignments below.
    scores = {m: [rendezvous_score(m, k) for k in keys] for m in grown}
    before = assign(scores, members)

    # The precomputed assignment is what the real pool does.
    pool = Pool(tuple(members))
    for i in range(0, N_USERS, 97):
        assert pool.pick(LoginContext(user_id=keys[i])) == before[i]

    # Balanced: every member gets 1/N of users, give or take 5 points.
    for m, share in shares(before, members).items():
        assert abs(share - 1 / n) <= 0.05, (m, share)

    # Adding a member moves ~1/(N+1) of users, all of them to the new member.
    after_add = assign(scores, grown)
    moved = [i for i in range(N_USERS) if after_add[i] != before[i]]
    assert abs(len(moved) / N_USERS - 1 / (n + 1)) <= 0.02
    assert all(after_add[i] == added for i in moved)
    for m, share in shares(after_add, grown).items():
        assert abs(share - 1 / (n + 1)) <= 0.05, (m, share)

    # Removing a member moves exactly its users (~1/N) and nobody else.
    after_remove = assign(scores, shrunk)
    moved_set = {i for i in range(N_USERS) if after_remove[i] != before[i]}
    assert moved_set == {i for i in range(N_USERS) if before[i] == removed}
    assert abs(len(moved_set) / N_USERS - 1 / n) <= 0.02


@given(st.text(min_size=1, max_size=40), st.lists(st.text(min_size=1), min_size=1, max_size=6))
def test_the_pools_fast_pick_is_rendezvous_pick(key: str, names: list[str]) -> None:
    """The precomputed member states must pick exactly what rendezvous_pick does: a user's
    member never changes with an upgrade."""
    members = tuple(dict.fromkeys(names))
    pool = Pool(members)
    assert pool.pick(LoginContext(user_id=key)) == rendezvous_pick(members, key.lower())
