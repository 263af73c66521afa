import type { AuditLog } from '../audit.js';
import type { BlockedSubject, Storage } from '../storage/storage.js';

/**
 * The block list of IdP subjects. A block is checked on every path that acts for a subject (the
 * exchange, the admin API with any credential, the web pages, operator refresh and token use), and
 * blocking ends what the subject holds at once: its web sessions and its operator logins.
 */
export class SubjectBlocks {
  constructor(
    private readonly storage: Storage,
    private readonly audit: AuditLog,
    private readonly now: () => number,
  ) {}

  async isBlocked(sub: string): Promise<boolean> {
    return (await this.storage.getBlockedSubject(sub)) !== undefined;
  }

  /** Blocks `sub`; `changed` is false when it was blocked already (its access is ended again anyway). */
  async block(sub: string, actor: string, reason: string | undefined): Promise<{ changed: boolean; webSessions: number; operatorLogins: number }> {
    const r = await this.storage.blockSubject({ subject: sub, blockedAt: this.now(), blockedBy: actor, reason: reason ?? null });
    if (r.added || r.webSessions > 0 || r.operatorLogins > 0) {
      await this.audit.record({
        type: 'subject_blocked',
        actor,
        subject: sub,
        detail: { ...(reason ? { reason } : {}), web_sessions_ended: r.webSessions, operator_logins_revoked: r.operatorLogins },
      });
    }
    return { changed: r.added, webSessions: r.webSessions, operatorLogins: r.operatorLogins };
  }

  /** The blocked subjects, the newest block first. */
  list(): Promise<BlockedSubject[]> {
    return this.storage.listBlockedSubjects();
  }

  async unblock(sub: string, actor: string): Promise<boolean> {
    const removed = await this.storage.unblockSubject(sub);
    if (removed) await this.audit.record({ type: 'subject_unblocked', actor, subject: sub });
    return removed;
  }
}
