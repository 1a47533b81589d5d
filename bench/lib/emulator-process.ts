/**
 * The Google emulator in a process of its own, so that its work (signing ID tokens, serving
 * Drive) does not run on behalf's event loop: in production Google is on other machines.
 * Usage: forked by emulator.ts with the client secret file to write as its argument.
 */
import { startEmulator } from '../../src/emulator/index.js';
import { serveRequests } from './processes.js';

const secretFile = process.argv[2];
if (secretFile === undefined) throw new Error('usage: emulator-process.ts CLIENT_SECRET_FILE');

const emulator = await startEmulator({ port: 0, host: '127.0.0.1' });
await emulator.writeClientSecret(secretFile);
serveRequests(
  { url: emulator.url, clients: emulator.clients },
  {
    memory: async () => process.memoryUsage().rss,
  },
  () => emulator.close(),
);
