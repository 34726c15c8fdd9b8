/**
 * What a shell sandbox runs to stay alive: an idle shell that exits at once on SIGTERM.
 * Portable to any image with a POSIX sh (`sleep infinity` is not: busybox lacks it).
 */
export const KEEP_ALIVE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
