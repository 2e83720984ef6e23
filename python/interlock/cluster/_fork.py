"""What a fork does to interlock.cluster's connections, registered with the process life-cycle
owner (interlock._lifecycle, stage ``cluster``).

Nothing has to stop before a fork: the connections are plain sockets, read by the threads of
the process that opened them, and the locks and pools around them belong to that process's
sessions. A forked child never uses them. It forgets its parent's sessions, and the first
cluster request in the child makes a session of its own, with its own connections and lease
(so a primitive the child inherited reconnects by itself). A spawned or forkserver child
starts with no session at all, and does the same.
"""

from __future__ import annotations

from .. import _lifecycle
from ._session import forget_all_in_child

_lifecycle.register("cluster", after_in_child=forget_all_in_child)
