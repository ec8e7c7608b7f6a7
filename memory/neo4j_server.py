"""The embedded knowledge graph: Neo4j Community 5.26 LTS run in-process by its test harness
(`org.neo4j.test:neo4j-harness` from Maven Central) through `neo4j_harness/Launcher.java`, with
Bolt on a loopback port, auth off, and the database under the data folder so the graph survives a
restart. Needs Java 17+ and Maven (which fetches the harness once into ~/.m2); without them the
graph is off. Production points `SWITCHBOARD_GRAPH__URL` at a Neo4j 5 server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from pathlib import Path

from neo4j import AsyncGraphDatabase
from neo4j.exceptions import DriverError, Neo4jError

from switchboard.errors import SwitchboardError
from switchboard.processes import ManagedProcess, ProcessFailed, free_port

log = logging.getLogger(__name__)

_HARNESS = Path(__file__).parent / "neo4j_harness"
_MAVEN_TIMEOUT = 600.0


class GraphOff(SwitchboardError):
    """The embedded graph cannot run here (no Java or Maven, or the harness cannot be had)."""

    status = 503
    type = "store_error"
    code = "graph_unavailable"


async def harness_classpath(cache_dir: Path) -> str:
    """The harness's classpath, resolved by Maven once per version of the pom and cached."""
    pom = _HARNESS / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    # Absolute: Maven resolves a relative -Dmdep.outputFile against the pom's folder, not ours
    # (the default data folder, `.switchboard`, is relative).
    cached = cache_dir.resolve() / f"classpath-{digest}.txt"
    if cached.exists():
        classpath = cached.read_text().strip()
        if all(Path(jar).exists() for jar in classpath.split(":")):
            return classpath
    maven = shutil.which("mvn")
    if maven is None:
        raise GraphOff("the embedded knowledge graph needs Maven (mvn) to fetch Neo4j")
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("resolving the Neo4j harness with Maven (once; cached in ~/.m2)")
    process = await asyncio.create_subprocess_exec(
        maven, "-q", "-B", "-f", str(pom), "dependency:build-classpath",
        f"-Dmdep.outputFile={cached}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), _MAVEN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GraphOff(f"Maven did not resolve the Neo4j harness in {_MAVEN_TIMEOUT:g}s") from None
    if process.returncode != 0 or not cached.exists():
        tail = output.decode(errors="replace").strip().splitlines()[-3:]
        raise GraphOff(f"Maven could not resolve the Neo4j harness: {' '.join(tail)}")
    return cached.read_text().strip()


class EmbeddedNeo4j:
    def __init__(self, data_dir: Path, port: int = 0, heap_mb: int = 512) -> None:
        self._dir = data_dir
        self.port = port or free_port()
        self._heap_mb = heap_mb
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    async def start(self, startup_timeout: float = 120.0) -> None:
        java = shutil.which("java")
        if java is None:
            raise GraphOff("the embedded knowledge graph needs Java 17+ (java not found)")
        classpath = await harness_classpath(self._dir / "harness")
        driver = AsyncGraphDatabase.driver(
            self.url, auth=None, connection_acquisition_timeout=1, connection_timeout=1
        )

        async def answers() -> bool:
            try:
                await driver.verify_connectivity()
            except (DriverError, Neo4jError, OSError):
                return False
            return True

        args = [
            java, f"-Xmx{self._heap_mb}m", "-XX:+UseSerialGC",
            "-cp", classpath, str(_HARNESS / "Launcher.java"),
            str(self.port), str(self._dir / "data"),
        ]  # fmt: skip
        self._process = ManagedProcess(
            "neo4j", args, self._dir / "neo4j.log", answers, startup_timeout, stdin_pipe=True
        )
        try:
            await self._process.start()
        except ProcessFailed as exc:
            raise GraphOff(exc.message) from None
        finally:
            await driver.close()

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()
