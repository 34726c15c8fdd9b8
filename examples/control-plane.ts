/**
 * The control plane in a few lines: an app on its disk, a file uploaded to it, a Python
 * function that reads it, and a plain container on the same disk.
 *
 *   afs serve --api-key "$AFFINETES_API_KEY" &            # the service (Docker needed)
 *   AFFINETES_URL=http://127.0.0.1:8008 npx tsx examples/control-plane.ts
 *
 * Without a registry, AFFINETES_BASE_IMAGE names the local Python image to run on.
 */
import { App, Image } from "affinetes";

const image = Image.from(process.env.AFFINETES_BASE_IMAGE ?? "python:3.12-slim");
await using app = new App({ name: "example", logs: (chunk) => process.stdout.write(`  | ${chunk}`) });
const disk = await app.diskId();
await app.client.disks.writeFile(disk, "texts/poem.txt", "the cat saw the dog and the dog saw the cat\n");

const count = app.function<{ path: string; top: number }, Array<[string, number]>>(
  { image },
  "examples/functions/wordcount.py:count",
);
console.log("top words:", JSON.stringify(await count.remote({ path: "/mnt/disk/texts/poem.txt", top: 2 })));

const ls = await app.run({ image, command: "ls /mnt/disk/texts" });
console.log("exit code:", (await ls.wait()).exitCode, "files:", (await ls.logs()).trim());
await ls.delete();
