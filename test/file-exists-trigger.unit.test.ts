import { appendFile, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FileExistsTrigger, type FileExistsEventPayload } from '../triggers/index.ts';
import type { TriggerEvent } from '../src/sdk/trigger.ts';
import { eventually } from './support/events.ts';

/**
 * Starts a trigger's run; `fired` tells whether it has produced its event yet, `looks` how many
 * scans it has finished. `looked()` waits for the next finished scan: the trigger has seen the files
 * as they are now (its watch armed before it looked), so "has not fired" is a fact, not a guess.
 */
function start(trigger: FileExistsTrigger) {
  const controller = new AbortController();
  const state = { fired: false, looks: 0 };
  const scan = trigger.scan.bind(trigger);
  trigger.scan = async (now?: number) => {
    const found = await scan(now);
    state.looks++;
    return found;
  };
  const event = trigger.run(controller.signal).then((e: TriggerEvent<FileExistsEventPayload> | undefined) => {
    state.fired = true;
    return e;
  });
  /** Resolves after a scan that started after this call (or after the first, before any). */
  const looked = (after = state.looks) => eventually(async () => state.looks > after, `look ${after + 1} of the trigger`);
  return { event, state, looked, stop: () => controller.abort() };
}

describe('FileExistsTrigger, on real files', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-files-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('fires at once for a file that is already there, with its path', async () => {
    await writeFile(path.join(dir, 'ready.csv'), 'a,b\n');
    const event = await new FileExistsTrigger({ path: path.join(dir, 'ready.csv') }).run(new AbortController().signal);
    expect(event?.payload).to.deep.equal({ paths: [path.join(dir, 'ready.csv')], truncated: false });
  });

  it('wakes on the filesystem event, long before its poll interval', async () => {
    const run = start(new FileExistsTrigger({ path: path.join(dir, 'late.csv'), pollInterval: { hours: 1 } }));
    await run.looked();
    expect(run.state.fired).to.equal(false);
    await writeFile(path.join(dir, 'late.csv'), 'x');
    // Only the watch can wake it: the next poll is an hour away, far beyond this test's timeout.
    expect((await run.event)?.payload.paths).to.deep.equal([path.join(dir, 'late.csv')]);
  });

  it('watches the nearest existing parent until the folder it waits in is created', async () => {
    const target = path.join(dir, 'incoming', 'today', 'data.csv');
    const run = start(new FileExistsTrigger({ path: target, pollInterval: { hours: 1 } }));
    await run.looked();
    // Each folder made wakes the watch on its parent; the look that follows moves the watch into it.
    let looks = run.state.looks;
    await mkdir(path.join(dir, 'incoming'));
    await run.looked(looks);
    looks = run.state.looks;
    await mkdir(path.join(dir, 'incoming', 'today'));
    await run.looked(looks);
    expect(run.state.fired).to.equal(false);
    await writeFile(target, 'x');
    expect((await run.event)?.payload.paths).to.deep.equal([target]);
  });

  it('matches a glob, ignoring other names and dot files, and fires on the rename that completes a write', async () => {
    await writeFile(path.join(dir, 'notes.txt'), 'not a csv');
    await writeFile(path.join(dir, '.hidden.csv'), 'dot files do not match *');
    const trigger = new FileExistsTrigger({ path: path.join(dir, '*.csv'), pollInterval: { hours: 1 } });
    const run = start(trigger);
    await run.looked();
    // A name the pattern cannot match does not even wake the trigger; scan() shows it is no match.
    await writeFile(path.join(dir, 'export.csv.part'), 'half written');
    expect(run.state.fired, 'a .part file is no match').to.equal(false);
    expect((await trigger.scan()).paths).to.deep.equal([]);
    await rename(path.join(dir, 'export.csv.part'), path.join(dir, 'export.csv'));
    expect((await run.event)?.payload).to.deep.equal({ paths: [path.join(dir, 'export.csv')], truncated: false });
  });

  it('does not fire for a file smaller than minSize, and fires once it has grown', async () => {
    const file = path.join(dir, 'growing.bin');
    await writeFile(file, Buffer.alloc(10));
    const run = start(new FileExistsTrigger({ path: file, minSize: 100, pollInterval: { hours: 1 } }));
    await run.looked();
    const looks = run.state.looks;
    await appendFile(file, Buffer.alloc(50));
    await run.looked(looks);
    expect(run.state.fired, 'still 60 bytes').to.equal(false);
    await appendFile(file, Buffer.alloc(50));
    expect((await run.event)?.payload.paths).to.deep.equal([file]);
  });

  it('waits until a file has not changed for stableFor before firing', async () => {
    const file = path.join(dir, 'upload.dat');
    const stableForMs = 1000;
    await writeFile(file, 'chunk 0\n');
    const run = start(new FileExistsTrigger({ path: file, stableFor: stableForMs / 1000, pollInterval: { hours: 1 } }));
    // A writer appending a chunk each time the trigger has looked: it sees the file growing, and
    // must not fire (each look comes about 100 ms after the last, well within stableFor).
    for (let chunk = 1; chunk <= 5; chunk++) {
      await run.looked();
      expect(run.state.fired, `fired while the file was still being written (chunk ${chunk})`).to.equal(false);
      await appendFile(file, `chunk ${chunk}\n`);
    }
    const lastWrite = (await stat(file)).mtimeMs;
    const event = await run.event;
    const firedAt = Date.now();
    expect(event?.payload.paths).to.deep.equal([file]);
    expect(firedAt - lastWrite, 'fired only after the file was unchanged for stableFor').to.be.at.least(stableForMs);
  });

  it('with a directory path, fires once the directory holds a file, reporting the files', async () => {
    const inbox = path.join(dir, 'inbox');
    await mkdir(path.join(inbox, 'nested'), { recursive: true });
    const run = start(new FileExistsTrigger({ path: inbox, pollInterval: 0.2 }));
    await run.looked();
    expect(run.state.fired, 'an empty directory does not count').to.equal(false);
    await writeFile(path.join(inbox, 'nested', 'a.json'), '{}');
    expect((await run.event)?.payload.paths).to.deep.equal([path.join(inbox, 'nested', 'a.json')]);
  });

  it('lets ** cross directories only with recursive, as Python glob does', async () => {
    await mkdir(path.join(dir, 'a', 'b', 'c'), { recursive: true });
    await writeFile(path.join(dir, 'a', 'one.csv'), '1');
    await writeFile(path.join(dir, 'a', 'b', 'c', 'deep.csv'), '2');
    const pattern = path.join(dir, '**', '*.csv');
    const recursive = await new FileExistsTrigger({ path: pattern, recursive: true }).scan();
    expect(recursive.paths).to.deep.equal([path.join(dir, 'a', 'b', 'c', 'deep.csv'), path.join(dir, 'a', 'one.csv')]);
    const flat = await new FileExistsTrigger({ path: pattern }).scan();
    expect(flat.paths, '** is * without recursive').to.deep.equal([path.join(dir, 'a', 'one.csv')]);
  });

  it('finds by polling what happens below the watched directory', async () => {
    // The watch is on `dir`; a file appearing two levels down raises no event there.
    await mkdir(path.join(dir, 'day1', 'out'), { recursive: true });
    const run = start(new FileExistsTrigger({ path: path.join(dir, '*', 'out', 'result.txt'), pollInterval: 0.2 }));
    await run.looked();
    await writeFile(path.join(dir, 'day1', 'out', 'result.txt'), 'done');
    expect((await run.event)?.payload.paths).to.deep.equal([path.join(dir, 'day1', 'out', 'result.txt')]);
  });

  it('stops without an event when cancelled', async () => {
    const run = start(new FileExistsTrigger({ path: path.join(dir, 'never.csv'), pollInterval: { hours: 1 } }));
    await run.looked();
    run.stop();
    expect(await run.event).to.equal(undefined);
  });

  it('survives serialize() → constructor, with durations stored in seconds', () => {
    const trigger = new FileExistsTrigger({ path: '/data/in/*.csv', pollInterval: { minutes: 1 }, minSize: 1, stableFor: 'PT30S', recursive: true });
    const [classpath, kwargs] = trigger.serialize();
    expect(classpath).to.equal('tsflow.triggers.FileExistsTrigger');
    expect(kwargs).to.deep.equal({ path: '/data/in/*.csv', pollInterval: 60, recursive: true, minSize: 1, stableFor: 30 });
    expect(new FileExistsTrigger(kwargs as never).serialize()).to.deep.equal([classpath, kwargs]);
  });

  it('refuses bad kwargs at construction, naming the field', () => {
    const make = (kwargs: object) => () => new FileExistsTrigger(kwargs as never);
    expect(make({ path: '' })).to.throw(/FileExistsTrigger path must not be empty/);
    expect(make({})).to.throw(/FileExistsTrigger path must be a string/);
    expect(make({ path: 'data/*.csv' })).to.throw(/FileExistsTrigger path must be absolute, got 'data\/\*\.csv'/);
    expect(make({ path: '/d/x', stableFor: -1 })).to.throw(/FileExistsTrigger stableFor must not be negative/);
    expect(make({ path: '/d/x', pollInterval: 0 })).to.throw(/FileExistsTrigger pollInterval must be more than 0 seconds/);
    expect(make({ path: '/d/x', minSize: -5 })).to.throw(/FileExistsTrigger minSize must be a whole number of bytes/);
    expect(make({ path: '/d/x', filepath: '/d/y' })).to.throw(/FileExistsTrigger has no field 'filepath'/);
    expect(make({ path: '/d/{a,b/x' })).to.throw(/unbalanced braces/);
  });
});
