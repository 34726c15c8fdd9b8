/**
 * What a shell sandbox runs to stay alive: an idle shell that exits at once on SIGTERM.
 * Portable to any image with a POSIX sh (`sleep infinity` is not: busybox lacks it).
 * Its `sleep` ends with it, even when only the shell is signalled.
 */
export const KEEP_ALIVE_SCRIPT =
  "trap 'kill $! 2>/dev/null; exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";
