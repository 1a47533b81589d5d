import type { BenchContext } from '../lib/context.js';
import type { WorkloadResult } from '../lib/report.js';

export async function runAccessTokenWorkload(_ctx: BenchContext): Promise<WorkloadResult[]> {
  return [];
}
