export { SecurityEventReceiver, type ReceivedEvent, type SecurityAction } from './receiver.js';
export {
  PostgresSecurityLog,
  SqliteSecurityLog,
  type SecurityEventRecord,
  type SecurityLog,
  type SecurityState,
  type SecurityStep,
  type UserSecurity,
} from './security-log.js';
export {
  readServiceAccountKey,
  registerReceiverAtStartup,
  registerRiscReceiver,
  RISC_EVENTS_REQUESTED,
} from './registration.js';
