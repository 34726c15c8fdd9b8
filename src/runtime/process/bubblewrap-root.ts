import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { SANDBOX_WORKDIR } from "./sandbox-cwd.js";

/** The host's system folders a sandbox on the host's root sees (read-only): programs and libraries. */
const HOST_SYSTEM = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/**
 * The files of the host's /etc a sandbox sees: what programs need to run (users' names,
 * the loader's cache, certificates, time zone, interpreters' settings). Not the rest:
 * no shadow, no SSH or service keys, no cluster configuration.
 */
const HOST_ETC = [
  "passwd",
  "group",
  "hosts",
  "nsswitch.conf",
  "host.conf",
  "gai.conf",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "alternatives",
  "ssl/certs",
  "ssl/openssl.cnf",
  "ca-certificates",
  "ca-certificates.conf",
  "localtime",
  "timezone",
  "os-release",
  "debian_version",
  "lsb-release",
  "profile",
  "profile.d",
  "bash.bashrc",
  "inputrc",
  "mime.types",
  "protocols",
  "services",
  "networks",
  "python3",
  "python3.11",
  "python3.12",
  "perl",
  "magic",
  "magic.mime",
  "terminfo",
  "shells",
  "login.defs",
];

/** An image root's top-level entries the sandbox provides itself. */
const OWN_ENTRIES = new Set(["dev", "proc", "sys", "tmp", SANDBOX_WORKDIR.slice(1)]);

/**
 * bwrap's arguments building the sandbox's root: a fresh, finally read-only tmpfs holding
 * read-only binds of the system's folders — on the host's root (`/`), only the whitelist
 * above, so /root, /home, /var, /srv, /opt, the service's state and every key stay out of
 * sight; on an image's root folder (an unpacked image the operator allowed), all of it.
 * Links are recreated as links, so none leads a bind outside what is listed.
 */
export function bubblewrapRootArgs(image: string, resolvConf: string): string[] {
  const args = ["--tmpfs", "/"];
  if (image === "/") {
    for (const name of HOST_SYSTEM) args.push(...entryArgs("/", name));
    for (const name of HOST_ETC) args.push(...entryArgs("/", join("etc", name)));
    args.push("--ro-bind", resolvConf, "/etc/resolv.conf");
    return args;
  }
  for (const name of readdirSync(image).sort()) {
    if (!OWN_ENTRIES.has(name)) args.push(...entryArgs(image, name));
  }
  // the NAT's resolver, where the image has a file to cover (nothing can be made in its read-only /etc)
  if (kindOf(join(image, "etc", "resolv.conf")) === "file")
    args.push("--ro-bind", resolvConf, "/etc/resolv.conf");
  return args;
}

/** The sandbox's own mounts, after its root: devices, processes, /tmp and the working folder. */
export function bubblewrapOwnArgs(workdir: string, tmp: string): string[] {
  return [
    ...["--dev", "/dev", "--proc", "/proc"],
    ...["--bind", tmp, "/tmp", "--bind", workdir, SANDBOX_WORKDIR],
    ...["--remount-ro", "/"],
  ];
}

function entryArgs(root: string, name: string): string[] {
  const source = join(root, name);
  const target = `/${name}`;
  switch (kindOf(source)) {
    case "link":
      return ["--symlink", readlinkSync(source), target];
    case "folder":
    case "file":
      return ["--ro-bind", source, target];
    default:
      return [];
  }
}

function kindOf(path: string): "link" | "folder" | "file" | undefined {
  try {
    const info = lstatSync(path);
    if (info.isSymbolicLink()) return "link";
    if (info.isDirectory()) return "folder";
    return info.isFile() ? "file" : undefined;
  } catch {
    return undefined;
  }
}
