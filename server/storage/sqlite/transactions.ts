// How the SQLite backend keeps transactions apart on its one connection. better-sqlite3 is
// synchronous, but a transaction of the async interface awaits between its steps, and meanwhile
// other requests run: their statements would land inside the open transaction (and be undone with
// it). So every transaction, and every operation asked for while one is open, waits its turn here
// (a mutex with a FIFO queue); when nothing is open an operation runs at once, as before.
//
// Group commit: grouped transactions asked for in one turn of the event loop (a rack's polls, device
// codes, config downloads, exchanges) share one BEGIN IMMEDIATE … COMMIT, each in its own savepoint,
// so a failure undoes only its own part; each is answered only after the commit.
import type Database from 'better-sqlite3';

interface GroupedWrite {
  /** An async write (awaits storage calls), or a synchronous one run with no promise between its statements. */
  run: (() => Promise<unknown>) | { sync: () => unknown };
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class TransactionQueue {
  private locked = false;
  private readonly waiting: (() => void)[] = [];
  private group: GroupedWrite[] = [];
  private depth = 0;
  private readonly begin: Database.Statement;
  private readonly commit: Database.Statement;
  private readonly rollback: Database.Statement;
  private readonly savepoints: { open: Database.Statement; release: Database.Statement; undo: Database.Statement }[] = [];

  constructor(private readonly db: Database.Database) {
    // immediate: take the write lock at the start, so two gate processes never both read-then-write
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
  }

  /** Runs op now when no transaction is open, else once the open and queued ones are done. */
  alone<T>(op: () => T): Promise<T> {
    if (!this.locked) {
      try {
        return Promise.resolve(op());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.exclusive(async () => op());
  }

  /** Runs fn in a transaction of its own: BEGIN IMMEDIATE, fn, COMMIT; ROLLBACK when fn or the commit fails. */
  transaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      this.begin.run();
      try {
        const value = await fn();
        this.commit.run();
        return value;
      } catch (e) {
        if (this.db.inTransaction) this.rollback.run();
        throw e;
      }
    });
  }

  /** Runs fn in a savepoint of the open transaction: its failure undoes only what fn did. */
  async savepoint<T>(fn: () => Promise<T>): Promise<T> {
    const sp = this.savepointAt(this.depth++);
    sp.open.run();
    try {
      const value = await fn();
      sp.release.run();
      return value;
    } catch (e) {
      this.undo(sp);
      throw e;
    } finally {
      this.depth--;
    }
  }

  /** A grouped transaction: committed with the others asked for in this turn of the event loop. */
  grouped<T>(fn: () => Promise<T>): Promise<T> {
    return this.joinGroup<T>(fn);
  }

  /**
   * A grouped write whose statements all run synchronously on the connection: committed with the
   * others of this turn like grouped(), in its own savepoint, but without the promise hops of an
   * async transaction between its statements. The exchange's record (a block check, the certificate
   * row and its audit rows) paid about as much for those hops as for its SQL.
   */
  groupedSync<T>(fn: () => T): Promise<T> {
    return this.joinGroup<T>({ sync: fn });
  }

  private joinGroup<T>(run: GroupedWrite['run']): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // setImmediate runs after the event loop has read every request that arrived in this turn
      if (this.group.length === 0) setImmediate(() => void this.commitGroup());
      this.group.push({ run, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Commits the group asked for so far; resolves once it and everything queued before it is done. */
  commitGroup(): Promise<void> {
    const group = this.group;
    this.group = [];
    if (group.length === 0) return this.exclusive(async () => undefined);
    return this.exclusive(async () => {
      const outcomes: Outcome[] = [];
      try {
        this.begin.run();
        for (const write of group) {
          try {
            const run = write.run;
            outcomes.push({ ok: true, value: typeof run === 'function' ? await this.savepoint(run) : this.savepointSync(run.sync) });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
        this.commit.run();
      } catch (error) {
        if (this.db.inTransaction) this.rollback.run();
        for (const write of group) write.reject(error);
        return;
      }
      group.forEach((write, i) => {
        const outcome = outcomes[i];
        if (outcome?.ok) write.resolve(outcome.value);
        else write.reject(outcome?.error);
      });
    });
  }

  /** savepoint() for a synchronous fn: the same savepoint statements, no promise. */
  private savepointSync<T>(fn: () => T): T {
    const sp = this.savepointAt(this.depth);
    sp.open.run();
    try {
      const value = fn();
      sp.release.run();
      return value;
    } catch (e) {
      this.undo(sp);
      throw e;
    }
  }

  /** What a failed savepoint did, undone (unless the failure ended the whole transaction). */
  private undo(sp: { undo: Database.Statement; release: Database.Statement }): void {
    if (this.db.inTransaction) {
      sp.undo.run();
      sp.release.run();
    }
  }

  private savepointAt(depth: number) {
    let sp = this.savepoints[depth];
    if (!sp) {
      sp = {
        open: this.db.prepare(`SAVEPOINT tx${depth}`),
        release: this.db.prepare(`RELEASE tx${depth}`),
        undo: this.db.prepare(`ROLLBACK TO tx${depth}`),
      };
      this.savepoints[depth] = sp;
    }
    return sp;
  }

  /** fn with the connection to itself: the mutex, handed from one holder to the next in FIFO order. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.locked) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.locked = true;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.locked = false;
    }
  }
}
