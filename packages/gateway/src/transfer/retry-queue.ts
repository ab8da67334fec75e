/** Chunks a transfer asks again, each with the server to avoid this time, the lowest first. */
export class RetryQueue {
  /** Chunk → the server to avoid; `order` holds the same chunks, lowest first. */
  private readonly avoid = new Map<number, string | undefined>();
  private readonly order: number[] = [];

  get size(): number {
    return this.order.length;
  }

  /** The lowest chunk queued. */
  get first(): number | undefined {
    return this.order[0];
  }

  /** The server to avoid for a queued chunk (its last one). */
  avoiding(chunk: number): string | undefined {
    return this.avoid.get(chunk);
  }

  /** Queues `chunk`, or changes the server to avoid for it when it is queued already. */
  add(chunk: number, avoid: string | undefined): void {
    if (!this.avoid.has(chunk)) {
      // Lowest first: the chunk that blocks delivery goes out before the others.
      let at = this.order.length;
      while (at > 0 && this.order[at - 1]! > chunk) at--;
      this.order.splice(at, 0, chunk);
    }
    this.avoid.set(chunk, avoid);
  }

  /** Takes the lowest chunk out. */
  shift(): void {
    const chunk = this.order.shift();
    if (chunk !== undefined) this.avoid.delete(chunk);
  }
}
