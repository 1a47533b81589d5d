/**
 * The refresh storm's process: both contenders' storms run here, in a process started for that
 * workload alone (see measureStorms in bench/workloads/refresh-storm.ts).
 */
import { measureStorms, type StormRequest } from '../workloads/refresh-storm.js';
import { serveRequests } from './processes.js';

serveRequests(null, { storm: (request: StormRequest) => measureStorms(request) });
