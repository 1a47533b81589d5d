import type { BenchContext } from '../lib/context.js';
import type { WorkloadResult } from '../lib/report.js';

export async function runProxyWorkload(_ctx: BenchContext): Promise<WorkloadResult[]> {
  return [];
}
