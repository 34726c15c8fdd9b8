import { z } from "zod";
import { duration } from "./output.js";

const counts = z.record(z.string(), z.number());

/** The document of the rollout service's `GET /stats` (see `RolloutService.stats`), as `afs poll` reads it. */
export const statsSchema = z.object({
  server_time: z.string(),
  uptime_s: z.number(),
  service_id: z.string(),
  active_instances: z.number(),
  total_instances: z.number(),
  max_resources: counts,
  allocated_resources: counts,
  available_resources: counts,
  instances: z.array(
    z.object({
      run_id: z.string(),
      container_name: z.string().nullable(),
      image: z.string(),
      type: z.string(),
      state: z.string(),
      service_id: z.string(),
      created_at: z.string(),
      last_used_at: z.string(),
      num_cmd: z.number(),
    }),
  ),
});

export type ServiceStats = z.infer<typeof statsSchema>;

export interface RenderStatsOptions {
  /** Add the table of instances. */
  list: boolean;
  /** Terminal columns to fit in; no truncation when undefined. */
  width?: number | undefined;
  /** The time idle and age are measured to: the server's clock avoids skew between hosts. */
  now: Date;
}

/** Columns never shrink below this, so a truncated cell still hints at its value. */
const MIN_COLUMN = 4;

/**
 * The text of one `afs poll` frame: service summary, resources table and, with `list`,
 * the instances table. Pure, so a frame is the same on a terminal, in a pipe and in tests.
 */
export function renderStats(stats: ServiceStats, options: RenderStatsOptions): string {
  const { width } = options;
  const summary = [
    `service id   ${stats.service_id}`,
    `server time  ${stats.server_time}`,
    `uptime       ${duration(stats.uptime_s * 1000)}`,
    `instances    ${stats.active_instances} active / ${stats.total_instances} total`,
  ].map((line) => clip(line, width));

  const keys = [
    ...new Set([
      ...Object.keys(stats.max_resources),
      ...Object.keys(stats.allocated_resources),
      ...Object.keys(stats.available_resources),
    ]),
  ];
  const resources = keys.length
    ? fitTable(
        ["RESOURCE", "MAX", "ALLOCATED", "AVAILABLE"],
        keys.map((k) => [
          k,
          count(stats.max_resources[k]),
          count(stats.allocated_resources[k]),
          count(stats.available_resources[k]),
        ]),
        width,
      )
    : clip("no tracked resources (afs serve --max-resources sets them)", width);

  const sections = [summary.join("\n"), resources];
  if (options.list) {
    const now = options.now.getTime();
    sections.push(
      stats.instances.length
        ? fitTable(
            ["RUN_ID", "CONTAINER", "TYPE", "IMAGE", "STATE", "CMDS", "IDLE", "AGE"],
            stats.instances.map((i) => [
              i.run_id,
              i.container_name ?? "-",
              i.type,
              i.image || "-",
              i.state,
              String(i.num_cmd),
              duration(now - Date.parse(i.last_used_at)),
              duration(now - Date.parse(i.created_at)),
            ]),
            width,
          )
        : clip("no instances", width),
    );
  }
  return sections.join("\n\n");
}

/**
 * Left-aligned columns that fit in `width`: the widest column gives way first, since
 * long ids and image names lose less by truncation than short numbers do.
 */
function fitTable(header: readonly string[], rows: readonly (readonly string[])[], width?: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const gaps = 2 * (widths.length - 1);
  while (width !== undefined && widths.reduce((a, b) => a + b, 0) + gaps > width) {
    const widest = widths.indexOf(Math.max(...widths));
    if ((widths[widest] ?? 0) <= MIN_COLUMN) break;
    widths[widest] = (widths[widest] ?? 0) - 1;
  }
  const format = (cells: readonly string[]) =>
    clip(
      cells
        .map((c, i) => truncate(c, widths[i] ?? 0).padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
      width,
    );
  return [format(header), ...rows.map(format)].join("\n");
}

/** `text` cut to `width` characters, ending in "…" when something was cut. */
export function truncate(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

function clip(line: string, width: number | undefined): string {
  return width === undefined ? line : truncate(line, width);
}

function count(value: number | undefined): string {
  return value === undefined ? "-" : String(value);
}
