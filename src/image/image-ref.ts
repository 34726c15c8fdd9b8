import { z } from "zod";

// Docker's reference grammar: [registry[:port]/]name[/name...][:tag]
const IMAGE_REF =
  /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** An image reference (`name:tag`, `registry:5000/org/name:tag`) or an image id (`sha256:...`). */
export const imageRefSchema = z.string().refine((v) => IMAGE_REF.test(v) || /^sha256:[a-f0-9]{64}$/.test(v), {
  message: 'expected an image reference like "name:tag" or "registry/org/name:tag"',
});
