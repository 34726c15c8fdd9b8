import { shellQuote } from "../../util/shell-quote.js";
import type { NetworkPlan } from "../docker/network-plan.js";
import { isSealed } from "../docker/network-plan.js";
import { netnsRulesScript, rulesPrerequisitesScript } from "../docker/netns-rules-script.js";
import { KEEP_ALIVE_SCRIPT } from "../keep-alive.js";
import { egressRules } from "../network-policy.js";

/** The in-image port of the method server (as the docker runtime publishes it). */
export const CONTAINER_SERVER_PORT = 8000;

/** Where a job's method server writes its port on the node; `srun` reads it back. */
export function portFilePath(jobId: string): string {
  return `/tmp/affinetes-slurm-${jobId}.port`;
}

/** Where a job holding a container under network rules marks them set, on the node; `srun` looks for it. */
export function networkReadyFilePath(jobId: string): string {
  return `/tmp/affinetes-slurm-${jobId}.net`;
}

/** A job holding a shell sandbox: an idle shell on the node; commands arrive through `srun`. */
export function shellJobScript(): string {
  return `#!/bin/sh\n${KEEP_ALIVE_SCRIPT}\n`;
}

/** A job running a task on the node: `sh -c command` with the instance's variables; its exit is the job's. */
export function taskJobScript(command: string, envVars: Readonly<Record<string, string>>): string {
  return ["#!/bin/sh", ...exports(envVars), `exec /bin/sh -c ${shellQuote(command)}`, ""].join("\n");
}

function exports(envVars: Readonly<Record<string, string>>): string[] {
  return Object.entries(envVars).map(([name, value]) => `export ${name}=${shellQuote(value)}`);
}

/**
 * A job running the method server of an environment folder on the node (which must see
 * the folder and affinetes' server script: a shared file system, as usual with Slurm).
 * The server picks a free port and writes it where `portFilePath` says.
 */
export function serverJobScript(options: {
  python: string;
  serverScript: string;
  envFile: string;
  envType: string;
  /** The instance's variables, exported by the script (never in sbatch's own environment). */
  envVars?: Readonly<Record<string, string>>;
}): string {
  return [
    "#!/bin/sh",
    ...exports(options.envVars ?? {}),
    'port_file="/tmp/affinetes-slurm-$SLURM_JOB_ID.port"',
    `export AFFINETES_ENV_PATH=${shellQuote(options.envFile)} AFFINETES_ENV_TYPE=${options.envType}`,
    'export AFFINETES_HOST=0.0.0.0 AFFINETES_PORT=0 AFFINETES_PORT_FILE="$port_file"',
    "unset AFFINETES_PARENT_PID", // the job, not the submitting client, holds the server
    `${shellQuote(options.python)} ${shellQuote(options.serverScript)} &`,
    "pid=$!",
    // scancel sends TERM: stop the server, forget the port
    `trap 'kill $pid 2>/dev/null; wait $pid; rm -f "$port_file"; exit 0' TERM INT`,
    "wait $pid",
    "status=$?",
    'rm -f "$port_file"',
    "exit $status",
    "",
  ].join("\n");
}

/**
 * A job holding a Docker container on the node: the image's method server (published on
 * a free port), a task's command or, for a sandbox, an idle shell. The container lives as long as the job:
 * when the job is cancelled or ends, it is removed. Under a network plan it starts off
 * the network, and joins the bridge once its rules hold (see `networkSetup`).
 */
export function dockerJobScript(options: {
  container: string;
  image: string;
  serves: boolean;
  /** A task: the container runs `command` (or the image's own) and the job ends with it. */
  task?: { command?: string | undefined };
  workdir?: string | undefined;
  envKeys: readonly string[];
  cpus?: number | undefined;
  memoryBytes?: number | undefined;
  labels: Readonly<Record<string, string>>;
  network?: NetworkPlan | undefined;
}): string {
  const network = options.network;
  const rules = network !== undefined && !isSealed(network);
  const flags = [
    "--rm",
    `--name ${shellQuote(options.container)}`,
    ...Object.entries(options.labels).map(([k, v]) => `--label ${shellQuote(`${k}=${v}`)}`),
    ...options.envKeys.map((key) => `-e ${shellQuote(key)}`), // values come from the job's environment
    ...(options.cpus ? [`--cpus ${options.cpus}`] : []),
    ...(options.memoryBytes ? [`--memory ${options.memoryBytes} --memory-swap ${options.memoryBytes}`] : []),
    ...(options.workdir ? [`-w ${shellQuote(options.workdir)}`] : []),
    ...(options.serves ? [`-p ${CONTAINER_SERVER_PORT}`] : []),
    ...(network
      ? ["--network none --cap-drop NET_RAW", ...network.hosts.map((h) => `--add-host ${shellQuote(h)}`)]
      : []),
  ].join(" ");
  const command = options.serves
    ? ""
    : options.task
      ? options.task.command !== undefined
        ? ` sh -c ${shellQuote(options.task.command)}`
        : ""
      : ` sh -c ${shellQuote(KEEP_ALIVE_SCRIPT)}`;
  return [
    "#!/bin/sh",
    `name=${shellQuote(options.container)}`,
    'net_file="/tmp/affinetes-slurm-$SLURM_JOB_ID.net"',
    `trap 'docker rm -f "$name" >/dev/null 2>&1; rm -f "$net_file"; exit 0' TERM INT`,
    // a node that cannot hold the rules says so before anything is created
    ...(rules
      ? [
          `( ${rulesPrerequisitesScript()}
) || exit $?`,
        ]
      : []),
    `docker run ${flags} ${shellQuote(options.image)}${command} &`,
    "pid=$!",
    ...(rules ? networkSetup(network) : []),
    "wait $pid",
    "status=$?",
    'docker rm -f "$name" >/dev/null 2>&1',
    'rm -f "$net_file"',
    "exit $status",
    "",
  ].join("\n");
}

/**
 * On the node, once the container runs (off every network): its namespace gets rules
 * that open nothing inbound, it joins the bridge, and the final rules open its ports to
 * the bridge's gateway (docker-proxy, this node) and to clients beyond the bridge (a
 * forwarded port), never to its neighbours. Then the ready file is written. Any failure
 * removes the container and ends the job, saying why in its log.
 */
function networkSetup(plan: NetworkPlan): string[] {
  const inspect = (format: string) => `$(docker inspect -f '${format}' "$name")`;
  const bridge = "{{.NetworkSettings.Networks.bridge";
  return [
    `fail() { echo "affinetes-network: $1" >&2; docker rm -f "$name" >/dev/null 2>&1; exit 1; }`,
    "i=0",
    `until [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ]; do`,
    '  kill -0 $pid 2>/dev/null || fail "the container ended before its network rules were set"',
    '  i=$((i+1)); [ $i -le 1200 ] || fail "the container did not start"',
    "  sleep 0.1",
    "done",
    `netns=${inspect("{{.NetworkSettings.SandboxKey}}")}`,
    `( ${netnsRulesScript('"$netns"', egressRules(plan.resolved, []))}
) || fail "could not set the network rules"`,
    'docker network disconnect none "$name" >/dev/null 2>&1',
    'docker network connect bridge "$name" || fail "could not join the bridge"',
    `gateway=${inspect(`${bridge}.Gateway}}`)}`,
    `subnet=${inspect(`${bridge}.IPAddress}}/${bridge}.IPPrefixLen}}`)}`,
    `( ${netnsRulesScript(
      '"$netns"',
      egressRules(plan.resolved, plan.openPorts, {
        bridge: { gateway: "$gateway", subnet: "$subnet", fromBeyond: true },
      }),
    )}
) || fail "could not set the network rules"`,
    'touch "$net_file"',
  ];
}
