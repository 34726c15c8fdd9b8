import { ValidationError } from "../../errors.js";

/** A disk mounted into a container at a path of its own (besides the container's disk). */
export class Volume {
  private constructor(
    readonly disk: string,
    readonly readOnly: boolean,
  ) {}

  /** The disk `disk` (id, `owner/name`, or the name of a disk you own); `readOnly` mounts refuse writes. */
  static fromDisk(disk: string, options: { readOnly?: boolean } = {}): Volume {
    if (!disk) throw new ValidationError("disk", "name the disk to mount");
    return new Volume(disk, options.readOnly ?? false);
  }

  /** As the REST API takes it. */
  toJSON(): { disk: string; readOnly: boolean } {
    return { disk: this.disk, readOnly: this.readOnly };
  }
}
