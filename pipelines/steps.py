"""Fewer, fatter Dagster steps: assets declared one by one, run several to a step.

Each asset (and each check) stays declared once, where it is (`@dg.asset`, `@dg.asset_check`);
`fused` runs a list of them as one multi-asset, the way dagster-dbt runs a dbt project: the
graph keeps every asset key, group, dependency, description and check, each asset reports its
own materialisation and metadata, but the run pays one step's event-log writes and overhead
for all of them. Selecting some of them still works (`can_subset`): only the selected ones run.
A blocking check that fails stops, within the step, every member downstream of its asset (and
Dagster fails the step after it, so later steps do not run), as separate steps did.
"""

import typing
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

T = typing.TypeVar("T")


def _fn(definition):
    return definition.op.compute_fn.decorated_fn if isinstance(definition, dg.AssetsDefinition) \
        else definition.node_def.compute_fn.decorated_fn


def _config_class(definition) -> type[dg.Config] | None:
    """The Pythonic config class of a member (`config: SomeConfig`), if it takes one."""
    hints = typing.get_type_hints(_fn(definition))
    return hints.get("config")


def _call(definition, context, config):
    """Run a member's own function with what it asks for: the context, its config, its resources."""
    fn = _fn(definition)
    given = {"context": context, "config": config}
    return fn(**{name: given[name] if name in given else getattr(context.resources, name)
                 for name in fn.__code__.co_varnames[:fn.__code__.co_argcount]})


def in_dependency_order(items: Sequence[T], key: Callable[[T], Hashable],
                        deps: Callable[[T], Iterable[Hashable]]) -> list[T]:
    """The items in the order given, each moved after the items among them it depends on."""
    keys = {key(i) for i in items}
    done, ordered, waiting = set(), [], list(items)
    while waiting:
        ready = next((i for i in waiting if set(deps(i)) & keys <= done), None)
        if ready is None:
            raise ValueError(f"a dependency cycle among {sorted(map(str, map(key, waiting)))}")
        waiting.remove(ready)
        ordered.append(ready)
        done.add(key(ready))
    return ordered


class _Done:
    """A member's result, run in the step's own thread, with a future's face."""

    def __init__(self, value):
        self._value = value

    def done(self) -> bool:
        return True

    def result(self):
        return self._value


def fused(name: str, assets: Sequence[dg.AssetsDefinition], checks: Sequence[dg.AssetChecksDefinition] = (),
          description: str = "", threads: int = 1) -> dg.AssetsDefinition:
    """One step (an op called `name`) that materialises `assets` in dependency order, each
    followed by its `checks`. At most one member takes a config (it becomes the step's config).
    With `threads` > 1, a member starts as soon as the members it depends on are done, beside
    the others running (for members that mostly wait on DuckDB or on another process, which
    do not hold the GIL); its events are still reported in dependency order."""
    assets = in_dependency_order(assets, lambda a: a.key, lambda a: (d.asset_key for d in a.get_asset_spec().deps))
    configs = [c for c in (_config_class(a) for a in assets) if c is not None]
    if len(configs) > 1:
        raise ValueError(f"step {name}: more than one member takes a config")
    config_class = configs[0] if configs else None
    checks_of = {a.key: [c for c in checks if next(iter(c.check_keys)).asset_key == a.key] for a in assets}
    unplaced = [c for c in checks if next(iter(c.check_keys)).asset_key not in checks_of]
    if unplaced:
        raise ValueError(f"step {name}: a check of an asset outside it: {unplaced}")
    blocking = {spec.key for c in checks for spec in c.check_specs if spec.blocking}
    resources = set().union(*(a.required_resource_keys for a in assets), *(c.required_resource_keys for c in checks))
    in_step = {a.key for a in assets}

    def member(asset, context, config) -> tuple[list, bool, Exception | None]:
        """The events of one member (its materialisation, then its checks'), whether a failed
        blocking check stops what depends on it, and what it raised: a check that raises still
        leaves its asset's materialisation reported, as when each was yielded at once."""
        events, stops = [], False
        try:
            if asset.key in context.selected_asset_keys:
                result = _call(asset, context, config) or dg.MaterializeResult()
                events.append(dg.MaterializeResult(asset_key=asset.key, metadata=result.metadata,
                                                   data_version=result.data_version, tags=result.tags))
            for check in checks_of[asset.key]:  # a check selected alone (the UI's "Execute") runs too
                [key] = check.check_keys
                if key not in context.selected_asset_check_keys:
                    continue
                found = _call(check, context, config)
                events.append(dg.AssetCheckResult(asset_key=asset.key, check_name=key.name, passed=found.passed,
                                                  severity=found.severity, description=found.description,
                                                  metadata=found.metadata))
                if key in blocking and not found.passed and found.severity == dg.AssetCheckSeverity.ERROR:
                    stops = True
        except Exception as error:  # noqa: BLE001 - raised again by the step, after its events
            return events, stops, error
        return events, stops, None

    @dg.multi_asset(
        name=name, description=description, can_subset=True, required_resource_keys=resources,
        config_schema=config_class.to_fields_dict() if config_class else None,
        specs=[a.get_asset_spec().replace_attributes(skippable=True) for a in assets],
        check_specs=[spec for c in checks for spec in c.check_specs])
    def _step(context: dg.AssetExecutionContext) -> Iterator:
        config = config_class(**(context.op_execution_context.op_config or {})) if config_class else None
        if threads == 1:
            futures = None
            run = lambda asset: _Done(member(asset, context, config))  # noqa: E731 - here, in this thread
        else:  # cancel_futures: a member not started when another fails (or the run is stopped) never starts
            futures = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
            run = lambda asset: futures.submit(member, asset, context, config)  # noqa: E731
        stopped = set()  # members not run: downstream of a failed blocking check
        started = []  # (asset key, its (future) member result), in dependency order
        reported = 0  # how many of them have had their events reported

        def report(everything: bool) -> Iterator:
            """The events of the members started, in order, up to the first still running
            (`everything`: waiting for each); what a member raised is raised after its events."""
            nonlocal reported
            while reported < len(started) and (everything or started[reported][1].done()):
                events, _, error = started[reported][1].result()
                reported += 1
                yield from events
                if error is not None:
                    raise error

        try:
            for asset in assets:
                deps = {d.asset_key for d in asset.get_asset_spec().deps} & in_step
                read = {key: pending.result() for key, pending in started if key in deps}  # done first
                if any(error for _, _, error in read.values()):
                    break  # what it reads raised: reported below
                stopped |= {key for key, (_, stops, _) in read.items() if stops}
                if deps & stopped:
                    stopped.add(asset.key)
                    continue
                started.append((asset.key, run(asset)))
                yield from report(everything=False)
            yield from report(everything=True)
        finally:
            if futures:
                futures.shutdown(wait=True, cancel_futures=True)

    return _step
