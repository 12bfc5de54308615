// Node keeps a process running while a socket is open or a server is listening, unless
// it was unref()'d. Facade sockets have no libuv handle of their own, so one shared,
// ref'd timer stands in for all of them while any of them holds it.

let holders = 0;
let timer: NodeJS.Timeout | null = null;

const noop = (): void => {};

/** Something that keeps the process alive while it is active and ref'd. */
export class ProcessHold {
  private active = false;
  private refd = true;
  private held = false;

  setActive(active: boolean): void {
    this.active = active;
    this.update();
  }

  setRef(refd: boolean): void {
    this.refd = refd;
    this.update();
  }

  private update(): void {
    const want = this.active && this.refd;
    if (want === this.held) return;
    this.held = want;
    if (want) {
      if (holders++ === 0) timer = setInterval(noop, 0x7fffffff);
    } else if (--holders === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }
}

/** How many sockets and servers keep the process alive now (for tests). */
export function processHolders(): number {
  return holders;
}
