import type { KeyDelta, ServerControl } from '../../src/shared/control.js';

/** A data plane stand-in for enforcer tests: the secret of every key it serves, by id (deltas only). */
export class SecretsControl implements ServerControl {
  readonly secrets = new Map<string, string>();
  setKeys(): void {
    throw new Error('the enforcer hands a delta-capable control deltas');
  }
  applyKeyDelta(d: KeyDelta): void {
    for (const id of d.remove) this.secrets.delete(id);
    for (const k of d.upsert) this.secrets.set(k.id, k.secret);
  }
  closeKeyConnections(): number {
    return 0;
  }
  openConnections(): ReadonlyMap<string, number> {
    return new Map();
  }
}
