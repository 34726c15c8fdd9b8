import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { afs } from "../helpers/afs.js";

const dir = mkdtempSync(join(tmpdir(), "afs-bad-"));
const db = join(dir, "s.db");
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const serve = (...args: string[]) => ["serve", "--port", "0", "--db", db, ...args];

/** [args, exit code, what stderr says]: bad numbers, unknown values, missing arguments. */
const cases: Array<[string[], number, RegExp]> = [
  // serve
  [["serve", "--port", "abc"], 2, /--port must be a positive integer, got abc/],
  [["serve", "--port", "99999"], 2, /--port is at most 65535/],
  [["serve", "--port", "-1"], 2, /--port must be a positive integer/],
  [["serve", "--port", "1.5"], 2, /--port must be a positive integer/],
  [["serve", "--runner", "vm"], 2, /Allowed choices are local, slurm/],
  [["serve", "--on-exit", "maybe"], 2, /Allowed choices are stop, keep/],
  [serve("--max-resources", "[1]"), 2, /--max-resources must be a JSON object/],
  [serve("--max-resources", "{nope"), 2, /--max-resources must be a JSON object/],
  [serve("--max-resources", '{"cpus":1e999}'), 2, /--max-resources: cpus must be a number/],
  [serve("--max-resources", '{"cpus":-1}'), 2, /cpus must be a number >= 0/],
  [serve("--max-resources", '{"instances":1.5}'), 2, /instances must be a whole number/],
  [serve("--max-resources", '{"a b":1}'), 2, /"a b" is not a resource key/],
  [serve("--max-resources", '{"cpus":"8"}'), 2, /cpus must be a number/],
  [serve("--default-resources", '{"cpus":0}'), 2, /--default-resources: cpus must be more than 0/],
  [serve("--default-resources", '{"memory_gb":-1}'), 2, /memory_gb must be more than 0/],
  [serve("--default-resources", '{"instances":2}'), 2, /instances is counted, not charged/],
  [serve("--default-network", "partial"), 2, /--default-network must be none, full or/],
  [serve("--default-timeout", "1e12"), 2, /--default-timeout is at most 86400 seconds/],
  [serve("--default-timeout", "0"), 2, /--default-timeout must be a positive number of seconds/],
  [serve("--default-timeout", "abc"), 2, /--default-timeout must be a positive number/],
  [serve("--idle-ttl", "-5"), 2, /--idle-ttl must be a positive number/],
  [serve("--idle-ttl", "1e300"), 2, /--idle-ttl is at most/],
  [serve("--max-output-bytes", "1e20"), 2, /--max-output-bytes is at most/],
  [serve("--max-output-bytes", "0"), 2, /--max-output-bytes must be a positive integer/],
  [serve("--service-id", ""), 2, /--service-id is 1 to 200 printable characters/],
  [serve("--service-id", "a b"), 2, /--service-id is 1 to 200 printable characters/],
  [serve("--sbatch-arg", "--time=1"), 2, /--sbatch-arg needs --runner slurm/],
  [serve("--sbatch-arg", ""), 2, /--sbatch-arg must be one non-empty line/],
  [serve("--host", "0.0.0.0"), 2, /is not loopback: give --api-key or --api-keys/],
  [serve("--environments", join(dir, "missing.json")), 2, /--environments.*ENOENT/],
  [serve("--environments", file("envs-bad.json", '{"x":{"container_type":"vm"}}')), 2, /x\.container_type/],
  [
    serve("--environments", file("envs-t.json", '{"x":{"container_type":"docker","timeout":1e12}}')),
    2,
    /x\.timeout.*at most 86400/,
  ],
  [serve("--api-keys", file("keys-json.json", "{nope")), 2, /--api-keys.*JSON/],
  [serve("--api-keys", file("keys-short.json", '{"short":"x"}')), 2, /the key of x is shorter than 16/],
  [serve("--api-keys", file("keys-array.json", "[]")), 2, /--api-keys.*expected \{/],
  [
    serve("--api-keys", file("keys-field.json", '{"0123456789abcdef0":{"name":"x","root":true}}')),
    2,
    /x: unknown field root/,
  ],
  [
    serve(
      "--api-keys",
      file("keys-allow.json", '{"0123456789abcdef0":{"name":"x","allow":{"container_types":"docker"}}}'),
    ),
    2,
    /x\.allow\.container_types/,
  ],
  [
    serve(
      "--api-keys",
      file("keys-type.json", '{"0123456789abcdef0":{"name":"x","allow":{"container_types":["vm"]}}}'),
    ),
    2,
    /allow\.container_types names vm/,
  ],
  [
    ["serve", "--port", "0", "--db", "postgres://u:pw@127.0.0.1:1/x"],
    1,
    /cannot open the service's database postgres:\/\/u:\*\*\*@/,
  ],
  [["serve", "--nope"], 2, /unknown option '--nope'/],
  // run
  [["run"], 2, /give an IMAGE or --dir PATH/],
  [["run", "img", "--replicas", "0"], 2, /--replicas must be a positive integer, got 0/],
  [["run", "img", "--replicas", "1.5"], 2, /--replicas must be a positive integer/],
  [["run", "img", "--mode", "vm"], 2, /--mode must be docker, process or slurm/],
  [["run", "img", "--load-balance", "nope"], 2, /Allowed choices are random, round_robin, least_busy/],
  [["run", "img", "--cpu-limit", "abc"], 2, /cpuLimit/],
  [["run", "img", "--mem-limit", "lots"], 2, /memLimit/],
  [["run", "img", "--env", "NOEQUALS"], 2, /expected --env KEY=VALUE/],
  [["run", "img", "--sbatch-arg", "--time=1"], 2, /--sbatch-arg needs --mode slurm/],
  // call
  [["call"], 2, /missing required argument 'name'/],
  [["call", "x"], 2, /missing required argument 'method'/],
  [["call", "x", "m", "--timeout", "abc"], 2, /--timeout must be a positive number of seconds/],
  [["call", "x", "m", "--timeout", "1e12"], 2, /--timeout is at most 2147483 seconds/],
  [["call", "x", "m", "--timeout", "-1"], 2, /--timeout must be a positive number/],
  [["call", "x", "m", "--json", "[1]"], 2, /--json must be a JSON object/],
  [["call", "x", "m", "--json", "{nope"], 2, /--json must be a JSON object/],
  [["call", "x", "m", "--arg", "noequals"], 2, /expected --arg key=value/],
  [["call", "no-such-env-here", "m"], 3, /Environment not found: no-such-env-here/],
  // poll
  [["poll"], 2, /required option '--url <url>'/],
  [["poll", "--url", "x"], 2, /--url must be an http:\/\/ or https:\/\/ URL/],
  [["poll", "--url", "ftp://h"], 2, /--url must be an http/],
  [["poll", "--url", "http://127.0.0.1:1", "--interval", "-1"], 2, /--interval must be a positive number/],
  [["poll", "--url", "http://127.0.0.1:1", "--interval", "1e12"], 2, /--interval is at most/],
  // the others
  [["logs"], 2, /missing required argument 'name'/],
  [["logs", "x", "--tail", "-1"], 2, /--tail must be a positive integer/],
  [["methods"], 2, /missing required argument 'name'/],
  [["stop"], 2, /give an environment NAME or --all/],
  [["stop", "--all", "--host", "a b"], 2, /"a b" is not a host/],
  [["build"], 2, /required option '--tag <tag>'/],
  [["init"], 2, /missing required argument 'name'/],
  [["init", "x", "--type", "nope"], 2, /--type must be function or http/],
  [["ls", "--host", "ssh://"], 2, /is not a host/],
  [["gc", "--host", "nope://x"], 2, /is not a host/],
  [["deploy", "/no/such/folder", "--host", "x"], 2, /\/no\/such\/folder is not a folder/],
  [["deploy", ".", "--host", "root@127.0.0.1:99999"], 2, /invalid port/],
  [["deploy", ".", "--host", "h", "--backend", "nope"], 2, /--backend must be one of/],
  [["jobs", "ls"], 2, /required option '--host <host>'/],
  [["jobs", "logs", "x", "--host", "127.0.0.1", "--tail", "0"], 2, /--tail must be a positive integer/],
  [["jobs", "wait", "x", "--host", "127.0.0.1", "--timeout", "1e12"], 2, /--timeout is at most/],
  [["nope"], 2, /unknown command 'nope'/],
];

/**
 * Issue 14, item 7, the `afs` face: a bad flag or argument exits non-zero with one clear
 * line on stderr, no stack trace, and (for `serve`) never starts a service.
 */
describe("afs: every bad flag is a clear error", () => {
  it.concurrent.each(cases.map(([args, code, says]) => [args.join(" "), args, code, says] as const))(
    "afs %s",
    async (_, args, code, says) => {
      const res = await afs(args, { timeoutMs: 60_000, env: { AFFINETES_API_KEY: undefined } });
      expect(res.code, res.stderr).toBe(code);
      expect(res.stderr).toMatch(says);
      expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(res.stdout).not.toMatch(/listening on/);
    },
  );
});
