/**
 * Memory planning for generated programs, following the greedy algorithm of upstream
 * ExecuTorch's memory planning pass (main at commit cff6f4dd32e6, `exir/memory_planning.py`,
 * `greedy` and `pick_shared_obj`):
 * - every planned tensor has a lifetime [first, last] of instruction indices, both ends
 *   inclusive, so a kernel's outputs never share memory with its inputs;
 * - tensors are taken largest first, with sizes rounded up to the alignment. Each goes into
 *   the first shared object that no overlapping tensor uses (at offset 0), else into the
 *   first shared object with room above the overlapping tensors, else into a new shared
 *   object of its own size;
 * - shared objects are laid out one after another in arena 1.
 */

export interface LifetimeSpec {
  /** Size in bytes. */
  size: number;
  /** First and last instruction index that use the tensor (inclusive). */
  first: number;
  last: number;
}

export interface MemoryPlan {
  /** Byte offset of each spec in the arena, in the order given. */
  offsets: number[];
  /** Arena size in bytes (a multiple of the alignment). */
  total: number;
}

interface SharedObject {
  size: number;
  offset: number;
  allocations: { spec: number; offset: number }[];
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

function overlaps(a: LifetimeSpec, b: LifetimeSpec): boolean {
  return !(a.last < b.first || a.first > b.last);
}

/** Plans offsets so that tensors with overlapping lifetimes never share bytes. */
export function planMemoryGreedy(specs: LifetimeSpec[], alignment = 16): MemoryPlan {
  const sizes = specs.map((spec) => alignUp(spec.size, alignment));
  // Ascending stable sort, then reversed: upstream inserts with bisect.insort and reverses.
  const order = specs.map((_, index) => index).sort((a, b) => sizes[a]! - sizes[b]!).reverse();

  const objects: SharedObject[] = [];
  for (const index of order) {
    const spec = specs[index]!;
    const size = sizes[index]!;
    let placed = false;
    for (const object of objects) {
      if (object.allocations.every((allocation) => !overlaps(specs[allocation.spec]!, spec))) {
        object.allocations.push({ spec: index, offset: 0 });
        placed = true;
        break;
      }
    }
    if (!placed) {
      for (const object of objects) {
        let top = 0;
        for (const allocation of object.allocations) {
          if (overlaps(specs[allocation.spec]!, spec)) top = Math.max(top, allocation.offset + sizes[allocation.spec]!);
        }
        if (top > 0 && top + size <= object.size) {
          object.allocations.push({ spec: index, offset: top });
          placed = true;
          break;
        }
      }
    }
    if (!placed) objects.push({ size, offset: 0, allocations: [{ spec: index, offset: 0 }] });
  }

  const offsets = new Array<number>(specs.length).fill(0);
  let total = 0;
  for (const object of objects) {
    object.offset = total;
    total += object.size;
    for (const allocation of object.allocations) offsets[allocation.spec] = object.offset + allocation.offset;
  }
  return { offsets, total };
}
