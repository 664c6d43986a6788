// Where page memory lives. Today: CPU (Float32Array). The interface is the seam for a device-resident
// store (e.g. WebGPU buffers that stay on the GPU between runs; see docs/ENGINE.md "GPU workers").

export interface PageMemory {
  /** Zero-initialised float storage for one page (or scratch). */
  allocate(floats: number): Float32Array;
  release(buf: Float32Array): void;
}

/** CPU memory with a small free list per size, so churn does not hammer the allocator. */
export class CpuPageMemory implements PageMemory {
  private readonly free = new Map<number, Float32Array[]>();
  private freeFloats = 0;
  constructor(private readonly maxFreeFloats = 16 * 1024 * 1024) {}

  allocate(floats: number): Float32Array {
    const list = this.free.get(floats);
    const buf = list?.pop();
    if (buf) {
      this.freeFloats -= floats;
      buf.fill(0);
      return buf;
    }
    return new Float32Array(floats);
  }

  release(buf: Float32Array): void {
    if (this.freeFloats + buf.length > this.maxFreeFloats) return;
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.freeFloats += buf.length;
  }
}
