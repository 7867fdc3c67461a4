"""One worker process per task and group of hosts, not per task and host.

Ansible forks a worker process for every task on every host. On this project's
2-core lab that fork was most of what a no-op task cost the controller: the fork
itself, the copy-on-write faults of a forked Python process (about 3,700 pages
per worker), a new Mitogen connection to the multiplexer, the exit. pyfleet's
strategies collect a task round's hosts instead and fork one worker per group
of hosts (those that Mitogen reaches through one multiplexer, at most
`PYFLEET_HOSTS_PER_WORKER` of them, default 12), as soon as a group is full or
the round is queued. The worker runs Ansible's own
TaskExecutor for each host in a thread of its own, so the hosts' modules still
run at the same time (the threads mostly wait for the hosts), and sends each
host's result through the same results queue, in the same form. `forks` still
bounds how many hosts run a task at once.

What the threads of a worker share is made safe for them here:
- each thread gets its own copy of the task (TaskExecutor templates the task's
  fields in place), taken before any thread starts, and starts from an empty
  context, as a worker's main thread does (Ansible keeps per-thread state in
  context variables);
- Ansible's plugin loader imports a plugin's file without a lock: one lock in
  the worker makes a second thread wait for the first;
- Mitogen's classic worker model holds one multiplexer connection per process
  and closes it after each task; a batch worker opens it once, shares it
  (Mitogen's router is thread-safe) and closes it when the threads are done.
  Mitogen gives a process one identity per multiplexer, so a batch holds hosts
  of one multiplexer only.

A throttled or delegated task, and plays that do not run through Mitogen (the
molecule driver's `connection: local` plays), fork a worker per host as before.
"""

import contextvars
import os
import threading
import time
import traceback

import ansible_mitogen.process
import mitogen.unix
from ansible import context
from ansible._internal import _task
from ansible._internal._errors import _error_utils
from ansible.errors import AnsibleError
from ansible.executor.process import worker as ansible_worker
from ansible.executor.task_executor import TaskExecutor
from ansible.executor.task_result import _RawTaskResult
from ansible.plugins import loader as plugin_loader

from pyfleet.skips import queued_here

# A worker's threads share one interpreter lock: 12 hosts of one task (with `forks` 24, two
# workers at once) cost the 24-host lab less than four workers of 6 (each fork costs its
# copy-on-write faults) and no more wall time.
DEFAULT_HOSTS_PER_WORKER = 12


def hosts_per_worker():
    """How many hosts one worker process serves (`PYFLEET_HOSTS_PER_WORKER`; 1: a worker per host)."""
    value = os.environ.get("PYFLEET_HOSTS_PER_WORKER", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_HOSTS_PER_WORKER


def group_size(per_worker, forks):
    """Hosts per worker: at most ``per_worker``, in groups that together fill ``forks`` exactly.

    With 24 hosts, `forks` 12 and 8 per worker, groups of 8 would leave 4 of the 12
    idle while the second group waits; groups of 6 keep 12 hosts at work.
    """
    size = min(per_worker, forks)
    return forks // -(-forks // size)  # forks over the number of groups it holds


def serialize_plugin_imports():
    """In this process, one thread at a time runs a plugin file Ansible's loader imports.

    The loader puts the new module in sys.modules before it runs its file, so a
    second thread asking for the plugin meanwhile got the half-run module ("has no
    attribute 'LookupModule'").
    """
    loader_class = plugin_loader.PluginLoader
    unlocked = loader_class._load_module_source
    lock = threading.RLock()  # a plugin's file may load another plugin as it runs

    def load_module_source(self, **kwargs):
        with lock:
            return unlocked(self, **kwargs)

    loader_class._load_module_source = load_module_source


class _SharedBinding:
    """A Mitogen binding whose multiplexer connection outlives the task (the batch closes it)."""

    def __init__(self, parent):
        self._parent = parent

    def get_service_context(self):
        return self._parent

    def get_child_service_context(self):
        return self._parent

    def close(self):
        """The connection stays open for the other threads."""


class SharedConnection:
    """Mitogen's worker model in a batch worker: one multiplexer connection, shared by the threads."""

    def __init__(self, path):
        self._path = path
        self._lock = threading.Lock()
        self._broker = None
        self._parent = None

    def get_binding(self, inventory_name):
        path = ansible_mitogen.process.get_classic_worker_model()._listener_for_name(inventory_name)
        if path != self._path:  # the strategy batches no delegated task; this is pyfleet's bug
            raise AnsibleError(f"pyfleet's batch worker for {self._path} was asked to reach {inventory_name}.")
        with self._lock:  # connected on first use: set_fact, assert and the like need no host
            if self._parent is None:
                # Not watching the thread that made it (Mitogen's default): that thread may end first.
                self._broker = ansible_mitogen.process.Broker(install_watcher=False)
                router, self._parent = mitogen.unix.connect(path=self._path, broker=self._broker)
                router.max_message_size = ansible_mitogen.process.MAX_MESSAGE_SIZE
        return _SharedBinding(self._parent)

    def on_strategy_start(self):
        """Nothing: the strategy runs in the main process, not here."""

    def on_strategy_complete(self):
        """Nothing: see on_strategy_start."""

    def close(self):
        if self._broker is not None:
            self._broker.shutdown()
            self._broker.join()


class BatchWorker(ansible_worker.WorkerProcess):
    """A worker process that runs one task on several hosts, a thread per host."""

    def __init__(self, *, items, multiplexer, **kwargs):
        host, task, task_vars, play_context = items[0]
        super().__init__(host=host, task=task, task_vars=task_vars, play_context=play_context, **kwargs)
        self.items = items
        self._multiplexer = multiplexer

    def _run(self):
        ansible_worker.current_worker = self
        serialize_plugin_imports()
        connection = SharedConnection(self._multiplexer)
        ansible_mitogen.process.set_worker_model(None)  # the classic model, in this process only
        ansible_mitogen.process.set_worker_model(connection)
        work = [(host, task.copy(), task_vars, play_context) for host, task, task_vars, play_context in self.items]
        threads = [
            threading.Thread(target=contextvars.Context().run, args=(self._run_one, *item), daemon=True)
            for item in work
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        connection.close()

    def _run_one(self, host, task, task_vars, play_context):
        """One host's task, as WorkerProcess._run runs it."""
        try:
            with _task.TaskContext(task):
                try:
                    result = TaskExecutor(
                        host,
                        task,
                        task_vars,
                        play_context,
                        self._loader,
                        self._shared_loader_obj,
                        self._final_q,
                        self._variable_manager,
                    ).run()
                except Exception as ex:  # TaskExecutor turns a task's errors into results; this is the rest
                    try:
                        raise AnsibleError(f"The task failed in pyfleet's batch worker on {host.name}.") from ex
                    except AnsibleError as wrapped:
                        result = _error_utils.result_dict_from_exception(wrapped)
                host.vars = {}  # as Ansible's worker: the result carries no inventory
                host.groups = []
                self._final_q.send_task_result(
                    _RawTaskResult(host=host, task=task, return_data=result, task_fields=task.dump_attrs())
                )
        except BaseException:  # no result sent: the process ends, and Ansible stops on a dead worker
            self._hard_exit(traceback.format_exc())


class BatchedWorkers:
    """Strategy mixin: a task round's hosts are run by one worker process per group of hosts."""

    _batching = False  # set by the strategy for the plays it runs through Mitogen

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # (task, multiplexer) -> [(host, task, task_vars, play_context)] queued, not yet forked
        self._waiting = {}

    def _queue_task(self, host, task, task_vars, play_context):
        if not self._batching or task.throttle or task.delegate_to:
            return super()._queue_task(host, task, task_vars, play_context)
        # Ansible's records of a queued task now; the fork when the group is full or the round queued.
        queued_here(self, host, task, task_vars, play_context)
        multiplexer = self._worker_model._listener_for_name(host.name)
        group = self._waiting.setdefault((task._uuid, multiplexer), [])
        group.append((host, task, task_vars, play_context))
        if len(group) >= group_size(hosts_per_worker(), len(self._workers)):
            # a full group starts now: its hosts work while the next hosts' variables are made
            del self._waiting[(task._uuid, multiplexer)]
            self._start_worker(group, multiplexer)
        return None

    def _wait_on_pending_results(self, iterator):
        # the round is queued: what is left of it starts, one worker per (task, multiplexer)
        waiting, self._waiting = self._waiting, {}
        for (_, multiplexer), group in waiting.items():
            self._start_worker(group, multiplexer)
        return super()._wait_on_pending_results(iterator)

    def _start_worker(self, items, multiplexer):
        slot = self._free_worker_slot(len(items))
        worker = BatchWorker(
            items=items,
            multiplexer=multiplexer,
            final_q=self._final_q,
            loader=self._loader,
            variable_manager=self._variable_manager,
            shared_loader_obj=plugin_loader.get_plugin_loader_namespace(),
            worker_id=slot,
            cliargs=context.CLIARGS,
        )
        self._workers[slot] = worker
        worker.start()

    def _free_worker_slot(self, hosts):
        """A slot with no live worker, once ``hosts`` more keep the hosts at work within `forks`."""
        while True:
            live = [worker for worker in self._workers if worker is not None and worker.is_alive()]
            busy = sum(len(getattr(worker, "items", [None])) for worker in live)
            if len(live) < len(self._workers) and busy + hosts <= len(self._workers):
                break
            time.sleep(0.001)  # as Ansible's _queue_task waits for a free slot
        for slot, worker in enumerate(self._workers):
            if worker is None or not worker.is_alive():
                if worker is not None:
                    worker.close()
                return slot
        raise AssertionError("a free worker slot was just counted")
