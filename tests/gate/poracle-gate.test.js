// Unit tests of poracle-gate's pure parts (run: node --test tests/gate/). The real sshd + pm2 tests are in
// test_gate_sshd.py; these use real files in temp dirs, nothing is mocked.
'use strict';

const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const test = require('node:test');

const gate = require('../../bot/gate/poracle-gate.js');

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'gate-test-'));
}

function executable(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o755 });
  return file;
}

function refusedWith(code, fn) {
  assert.throws(fn, function (err) {
    assert.ok(err instanceof gate.GateError, String(err));
    assert.strictEqual(err.code, code, err.message);
    return true;
  });
}

// --------------------------------------------------------------------------------------- parseCommand

test('commands are "poracle-gate <protocol> <verb> [args]", split on spaces', () => {
  assert.deepStrictEqual(gate.parseCommand('poracle-gate 1 hello'), { verb: 'hello', args: [] });
  assert.deepStrictEqual(gate.parseCommand(' poracle-gate  1 logs  alpha 20 '), { verb: 'logs', args: ['alpha', '20'] });
  assert.deepStrictEqual(gate.parseCommand('poracle-gate 1 restart my.app@host:1-x'),
    { verb: 'restart', args: ['my.app@host:1-x'] });
});

test('every character outside names, numbers and spaces is refused, not interpreted', () => {
  const tails = [';', '$(id)', '`id`', '&&', '&', '|', '<', '>', '\n', '\r', '\t', '\\', '"', "'", '*', '?', '~',
    '/', '#', '!', '(', ')', '{', '}', '[', ']', '=', ',', '\0', 'é', '\u00a0'];
  for (const tail of tails) {
    refusedWith('bad-syntax', () => gate.parseCommand('poracle-gate 1 restart alpha' + tail));
  }
});

test('no command, empty, too long, not a gate command, other protocols, unknown verbs', () => {
  refusedWith('no-command', () => gate.parseCommand(undefined));
  refusedWith('empty', () => gate.parseCommand(''));
  refusedWith('empty', () => gate.parseCommand('   '));
  refusedWith('too-long', () => gate.parseCommand('poracle-gate 1 restart ' + 'a'.repeat(250)));
  refusedWith('too-long', () => gate.parseCommand('é'.repeat(129))); // bytes, not characters
  assert.ok(gate.parseCommand('poracle-gate 1 logs ' + 'a'.repeat(232) + ' 1'));
  for (const text of ['id', 'pm2 delete all', 'poracle-gate', 'poracle-gate 1', 'poracle-gate x hello', 'poracle-gate 1234 hello']) {
    refusedWith('bad-syntax', () => gate.parseCommand(text));
  }
  refusedWith('unsupported-protocol', () => gate.parseCommand('poracle-gate 2 hello'));
  refusedWith('unknown-verb', () => gate.parseCommand('poracle-gate 1 delete all'));
  try {
    gate.parseCommand('poracle-gate 1 delete all');
  } catch (err) {
    assert.deepStrictEqual(err.extra, { verbs: gate.VERBS });
    assert.match(err.message, new RegExp(gate.VERSION.replace(/\./g, '\\.')));
  }
});

test('arguments: counts, names, ids, "all" for restart only, bounded line counts', () => {
  assert.deepStrictEqual(gate.checkArguments('hello', []), {});
  assert.deepStrictEqual(gate.checkArguments('restart', ['all']), { target: { all: true } });
  assert.deepStrictEqual(gate.checkArguments('restart', ['7']), { target: { id: 7 } });
  assert.deepStrictEqual(gate.checkArguments('restart', ['PoracleJS']), { target: { name: 'PoracleJS' } });
  assert.deepStrictEqual(gate.checkArguments('logs', ['a', '200']), { target: { name: 'a' }, lines: 200 });
  assert.deepStrictEqual(gate.checkArguments('logs', ['a'.repeat(64), '1']), { target: { name: 'a'.repeat(64) }, lines: 1 });
  const refused = [
    ['hello', ['x']], ['processes', ['all']], ['restart', []], ['restart', ['a', 'b']], ['restart', ['--help']],
    ['restart', ['-s']], ['restart', ['.hidden']], ['restart', ['a'.repeat(65)]], ['restart', ['0123']],
    ['restart', ['1234567']], ['logs', ['all', '5']], ['logs', ['a']], ['logs', ['a', '0']], ['logs', ['a', '201']],
    ['logs', ['a', '05']], ['logs', ['a', '-1']], ['logs', ['a', '1.5']],
  ];
  for (const [verb, args] of refused) {
    refusedWith('bad-arguments', () => gate.checkArguments(verb, args));
  }
});

test('exit codes: 1 for what the bot asked wrongly, 2 for what failed on the server', () => {
  assert.strictEqual(gate.exitCodeFor('bad-syntax'), 1);
  assert.strictEqual(gate.exitCodeFor('unknown-process'), 1);
  assert.strictEqual(gate.exitCodeFor('not-allowed'), 1);
  assert.strictEqual(gate.exitCodeFor('no-pm2'), 2);
  assert.strictEqual(gate.exitCodeFor('pm2-timeout'), 2);
  assert.strictEqual(gate.exitCodeFor('bad-config'), 2);
});

// -------------------------------------------------------------------------------------------- options

test('options: defaults, and each of the key line and the config file can only take verbs away', () => {
  const home = tempDir();
  const env = { XDG_CONFIG_HOME: path.join(home, 'conf') };
  const defaults = gate.loadOptions([], env, home);
  assert.deepStrictEqual(defaults.allow, gate.VERBS);
  assert.strictEqual(defaults.pm2, null);
  assert.strictEqual(defaults.restartTimeoutMs, 60000);
  assert.strictEqual(defaults.log, path.join(home, '.local', 'state', 'poracle-gate', 'gate.log'));

  fs.mkdirSync(env.XDG_CONFIG_HOME);
  fs.writeFileSync(path.join(env.XDG_CONFIG_HOME, 'poracle-gate.json'),
    JSON.stringify({ allow: ['processes', 'restart'], pm2: '/from/config', restart_timeout: 30 }));
  const both = gate.loadOptions(['--allow=processes,logs', '--pm2=/from/key', '--log=/x/gate.log'], env, home);
  assert.deepStrictEqual(both.allow, ['hello', 'processes']);
  assert.strictEqual(both.pm2, '/from/key');
  assert.strictEqual(both.log, '/x/gate.log');
  assert.strictEqual(both.restartTimeoutMs, 30000);
  assert.deepStrictEqual(gate.loadOptions(['--restart-timeout=5'], env, home).restartTimeoutMs, 5000);
});

test('bad options and config files are refused (fail closed), a missing default config is fine', () => {
  const home = tempDir();
  const file = path.join(home, 'c.json');
  const bad = [
    ['--allow=hello,delete'], ['--verbose'], ['--pm2='], ['--pm2'], ['extra'], ['--restart-timeout=abc'],
    ['--restart-timeout=0'], ['--config=' + path.join(home, 'missing.json')], ['--config=' + file],
  ];
  fs.writeFileSync(file, '{"allow": "hello"}');
  for (const argv of bad) {
    refusedWith('bad-config', () => gate.loadOptions(argv, {}, home));
  }
  for (const text of ['not json', '[]', '{"alow": ["hello"]}', '{"restart_timeout": "x"}']) {
    fs.writeFileSync(file, text);
    refusedWith('bad-config', () => gate.loadOptions(['--config=' + file], {}, home));
  }
});

test('the log goes under XDG_STATE_HOME when set', () => {
  assert.strictEqual(gate.defaultLogPath({ XDG_STATE_HOME: '/s' }, '/h'), '/s/poracle-gate/gate.log');
  assert.strictEqual(gate.defaultLogPath({}, '/h'), '/h/.local/state/poracle-gate/gate.log');
});

// ------------------------------------------------------------------------------------------------ pm2

test('pm2 is looked for on PATH, beside node, in the newest nvm node, then the usual places', () => {
  const home = tempDir();
  for (const version of ['v9.11.2', 'v18.2.0', 'v18.10.0', 'not-a-version']) {
    executable(path.join(home, '.nvm', 'versions', 'node', version, 'bin', 'pm2'), '');
  }
  const candidates = gate.pm2Candidates({ PATH: '/a:/b' }, home, '/opt/node/bin/node');
  const nvm = (v) => path.join(home, '.nvm', 'versions', 'node', v, 'bin', 'pm2');
  assert.deepStrictEqual(candidates, [
    '/a/pm2', '/b/pm2', '/opt/node/bin/pm2', nvm('v18.10.0'), nvm('v18.2.0'), nvm('v9.11.2'),
    path.join(home, '.npm-global', 'bin', 'pm2'), '/usr/local/lib/node_modules/pm2/bin/pm2', '/usr/local/bin/pm2',
    '/opt/homebrew/bin/pm2', '/usr/bin/pm2',
  ]);
});

test("npm's configured prefix comes after nvm: NPM_CONFIG_PREFIX, else ~/.npmrc's prefix line", () => {
  const home = tempDir();
  const after = (env) => gate.pm2Candidates(Object.assign({ PATH: '' }, env), home, '/opt/node/bin/node')[1];
  assert.strictEqual(after({}), path.join(home, '.npm-global', 'bin', 'pm2')); // no .npmrc: none
  assert.strictEqual(after({ NPM_CONFIG_PREFIX: '/srv/npm' }), '/srv/npm/bin/pm2');
  fs.writeFileSync(path.join(home, '.npmrc'), '//registry.npmjs.org/:_authToken=secret\nprefix = ~/.local\n');
  assert.strictEqual(after({}), path.join(home, '.local', 'bin', 'pm2'));
  assert.strictEqual(after({ npm_config_prefix: '/srv/npm' }), '/srv/npm/bin/pm2'); // the environment wins
  fs.writeFileSync(path.join(home, '.npmrc'), 'prefix="${HOME}/npm"\n');
  assert.strictEqual(after({}), path.join(home, 'npm', 'bin', 'pm2'));
  fs.writeFileSync(path.join(home, '.npmrc'), 'prefix=relative/dir\n'); // not a place: ignored
  assert.strictEqual(after({}), path.join(home, '.npm-global', 'bin', 'pm2'));
});

test('findPm2: --pm2 wins and must exist; otherwise the first executable candidate', () => {
  const dir = tempDir();
  const pm2 = executable(path.join(dir, 'bin', 'pm2'), '#!/bin/sh\n');
  fs.writeFileSync(path.join(dir, 'pm2'), ''); // not executable: skipped
  assert.strictEqual(gate.findPm2(pm2, {}, dir, '/nonexistent/node'), pm2);
  refusedWith('no-pm2', () => gate.findPm2(path.join(dir, 'pm2'), {}, dir, '/nonexistent/node'));
  refusedWith('no-pm2', () => gate.findPm2(path.join(dir, 'bin'), {}, dir, '/nonexistent/node'));
  const env = { PATH: [dir, path.join(dir, 'bin')].join(path.delimiter) };
  assert.strictEqual(gate.findPm2(null, env, dir, '/nonexistent/node'), pm2);
});

test('pm2 as a node script runs with the node beside it, else with ours; a binary runs as is', () => {
  const dir = tempDir();
  const script = executable(path.join(dir, 'lib', 'node_modules', 'pm2', 'bin', 'pm2'), '#!/usr/bin/env node\n');
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.symlinkSync(script, path.join(dir, 'bin', 'pm2'));
  assert.deepStrictEqual(gate.pm2Command(path.join(dir, 'bin', 'pm2'), '/our/node'), { file: '/our/node', args: [script] });
  const node = executable(path.join(dir, 'bin', 'node'), '');
  assert.deepStrictEqual(gate.pm2Command(path.join(dir, 'bin', 'pm2'), '/our/node'), { file: node, args: [script] });
  const binary = executable(path.join(dir, 'pm2-binary'), '\x7fELF');
  assert.deepStrictEqual(gate.pm2Command(binary, '/our/node'), { file: binary, args: [] });
});

test('runPm2: output and exit code back, a time limit, and no-pm2 when it cannot start', async () => {
  const node = { file: process.execPath, args: ['-e'] };
  const said = await gate.runPm2(node, ['process.stdout.write("out"); process.stderr.write("err"); process.exit(3)'], 5000);
  assert.deepStrictEqual(said, { code: 3, stdout: 'out', stderr: 'err' });
  const started = Date.now();
  await assert.rejects(gate.runPm2(node, ['setTimeout(() => {}, 10000)'], 300), (err) => err.code === 'pm2-timeout');
  assert.ok(Date.now() - started < 5000);
  await assert.rejects(gate.runPm2({ file: '/nonexistent/pm2', args: [] }, ['jlist'], 1000), (err) => err.code === 'no-pm2');
});

const JLIST_APP = {
  pid: 4242,
  name: 'PoracleJS',
  pm_id: 3,
  monit: { memory: 123456789, cpu: 1.5 },
  pm2_env: {
    status: 'online',
    pm_uptime: 1700000000000,
    restart_time: 4,
    unstable_restarts: 1,
    exit_code: 0,
    pm_out_log_path: '/logs/out.log',
    DISCORD_TOKEN: 'top-level-secret-value',
    env: { DB_PASSWORD: 'nested-secret-value', PATH: '/usr/bin', USE_KEY: 'true', PIN_KEY: 'abc' },
  },
};

test('jlist is found after junk lines; the list is the last JSON array line', () => {
  const text = 'daemon starting\n>>>> In-memory PM2 is out-of-date, do:\n[not json\n' + JSON.stringify([JLIST_APP, null, 5]) + '\n';
  assert.deepStrictEqual(gate.parseJlist(text), [JLIST_APP]);
  refusedWith('pm2-failed', () => gate.parseJlist('[PM2] Spawning PM2 daemon\n{"a": 1}\n'));
});

test('processes carry named fields only, never the environment', () => {
  const picked = gate.pickProcess(JLIST_APP);
  assert.deepStrictEqual(picked, {
    name: 'PoracleJS', pm_id: 3, status: 'online', pid: 4242, started_at_ms: 1700000000000, restarts: 4,
    unstable_restarts: 1, memory_bytes: 123456789, cpu_percent: 1.5, exit_code: 0,
  });
  const stopped = gate.pickProcess({ name: 'x', pm_id: 0, pid: 0, pm2_env: { status: 'stopped', exit_code: 'odd' } });
  assert.strictEqual(stopped.pid, null);
  assert.strictEqual(stopped.exit_code, null);
  assert.strictEqual(gate.pickProcess({}).name, null);
});

test('targets match names (all instances), ids, or all', () => {
  const apps = [{ name: 'a', pm_id: 0 }, { name: 'b', pm_id: 1 }, { name: 'a', pm_id: 2 }];
  assert.deepStrictEqual(gate.matchTarget(apps, { name: 'a' }).map((a) => a.pm_id), [0, 2]);
  assert.deepStrictEqual(gate.matchTarget(apps, { id: 1 }).map((a) => a.name), ['b']);
  assert.strictEqual(gate.matchTarget(apps, { all: true }).length, 3);
  assert.deepStrictEqual(gate.matchTarget(apps, { name: 'c' }), []);
});

// ------------------------------------------------------------------------------------------ redaction

test('the values of secret-named variables of every process are hidden wherever they occur', () => {
  const secrets = gate.environmentSecrets([JLIST_APP, { pm2_env: { API_KEY: 'nested-secret-value-longer' } }]);
  // Longest first; "true" and values under 4 characters would only garble the text.
  assert.deepStrictEqual(secrets, ['nested-secret-value-longer', 'top-level-secret-value', 'nested-secret-value']);
  assert.strictEqual(
    gate.redact('a nested-secret-value-longer b top-level-secret-value true abc', secrets),
    'a [REDACTED] b [REDACTED] true abc');
});

test('each line of a multi-line secret is hidden, since logs are redacted line by line', () => {
  const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
  const secrets = gate.environmentSecrets([{ pm2_env: { env: { SSH_PRIVATE_KEY: pem } } }]);
  assert.strictEqual(gate.redact('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC', secrets), '[REDACTED]');
  assert.strictEqual(gate.redact('BKcwggSjAgEAAoIBAQC7', secrets), '[REDACTED]');
});

test('secret-looking text is hidden by pattern', () => {
  const token = 'MTIzNDU2Nzg5MDEyMzQ1Njc4OTAx.GaBcDe.abcdefghijklmnopqrstuvwxyz012345';
  const cases = [
    ['logged in with ' + token + ' ok', 'logged in with [REDACTED] ok'],
    ['hook https://discord.com/api/webhooks/123456789/AbC-dEf_123456789xyz?wait=1',
      'hook https://discord.com/api/webhooks/123456789/[REDACTED]?wait=1'],
    ['https://discordapp.com/api/v10/webhooks/1/tok', 'https://discordapp.com/api/v10/webhooks/1/[REDACTED]'],
    ['db mysql://poracle:s3cr%t@db:3306/poracle', 'db mysql://poracle:[REDACTED]@db:3306/poracle'],
    ['Authorization: Bearer abc.def', 'Authorization: Bearer [REDACTED]'],
    ['x-poracle-secret: hunter2', 'x-poracle-secret: [REDACTED]'],
    ['FOO_TOKEN=abc123 next', 'FOO_TOKEN=[REDACTED] next'],
    ['{"password": "my pass word", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'],
    ["dbPass: 'x y'", "dbPass: '[REDACTED]'"],
    ['GET /x?key=0123456789abcdef&page=2', 'GET /x?key=[REDACTED]&page=2'],
    ['apiSecret=QUJDREVGR0hJSktMTU5PUA==', 'apiSecret=[REDACTED]'],
    ['nothing secret here: 42 pokemon', 'nothing secret here: 42 pokemon'],
  ];
  for (const [text, expected] of cases) {
    assert.strictEqual(gate.redact(text, []), expected);
  }
  // An exact value already hidden is not hidden twice.
  assert.strictEqual(gate.redact('DISCORD_TOKEN=' + token, [token]), 'DISCORD_TOKEN=[REDACTED]');
});

test('ANSI escapes and control characters are removed', () => {
  assert.strictEqual(gate.clean('\x1b[32m[PM2] \x1b[39mok\r\x07 \x1b]0;title\x07done\tx'), '[PM2] ok done\tx');
});

// ----------------------------------------------------------------------------------------------- tail

test('tailLines reads the last lines from the end of a file', () => {
  const dir = tempDir();
  const file = path.join(dir, 'out.log');
  const lines = [];
  for (let i = 0; i < 20000; i++) lines.push('line ' + i + ' ' + 'x'.repeat(i % 50));
  fs.writeFileSync(file, lines.join('\n') + '\n');
  assert.deepStrictEqual(gate.tailLines(file, 3), lines.slice(-3));
  assert.deepStrictEqual(gate.tailLines(file, 200), lines.slice(-200));
  fs.writeFileSync(file, 'one\ntwo');
  assert.deepStrictEqual(gate.tailLines(file, 5), ['one', 'two']);
  fs.writeFileSync(file, '');
  assert.deepStrictEqual(gate.tailLines(file, 5), []);
  assert.deepStrictEqual(gate.tailLines(path.join(dir, 'missing.log'), 5), []);
});

test('tailLines does not hang on a FIFO and refuses an unreadable file', () => {
  const dir = tempDir();
  const fifo = path.join(dir, 'fifo');
  childProcess.execFileSync('mkfifo', [fifo]);
  assert.deepStrictEqual(gate.tailLines(fifo, 5), []);
  refusedWith('log-unreadable', () => gate.tailLines(path.join(dir, 'fifo', 'below-a-fifo'), 5));
});

// ------------------------------------------------------------------------------------------------ log

test('the log: JSON lines appended, one old generation kept, failures reported not thrown', () => {
  const dir = tempDir();
  const file = path.join(dir, 'state', 'poracle-gate', 'gate.log');
  assert.strictEqual(gate.appendLog(file, { event: 'refused' }), null);
  assert.strictEqual(gate.appendLog(file, { event: 'accepted', args: ['a\nb'] }), null);
  assert.deepStrictEqual(fs.readFileSync(file, 'utf8').split('\n'), ['{"event":"refused"}', '{"event":"accepted","args":["a\\nb"]}', '']);
  fs.writeFileSync(file, 'x'.repeat(10 * 1024 * 1024 + 1));
  assert.strictEqual(gate.appendLog(file, { event: 'done' }), null);
  assert.strictEqual(fs.readFileSync(file, 'utf8'), '{"event":"done"}\n');
  assert.strictEqual(fs.statSync(file + '.1').size, 10 * 1024 * 1024 + 1);
  assert.match(gate.appendLog(path.join(file, 'below-a-file.log'), {}), /^cannot write .*below-a-file\.log: /);
});

test('the client address comes from SSH_CONNECTION, else SSH_CLIENT', () => {
  assert.deepStrictEqual(gate.clientAddress({ SSH_CONNECTION: '192.0.2.7 50000 192.0.2.1 22' }),
    { client: '192.0.2.7', client_port: 50000 });
  assert.deepStrictEqual(gate.clientAddress({ SSH_CLIENT: '::1 4000 22' }), { client: '::1', client_port: 4000 });
  assert.deepStrictEqual(gate.clientAddress({}), { client: null, client_port: null });
});

// ---------------------------------------------------------------------------------------------- serve

async function served(command, argv) {
  const entries = [];
  const reply = await gate.serve(command, argv, { XDG_CONFIG_HOME: tempDir() }, (file, entry) => entries.push(entry));
  return { reply, entries };
}

test('serve: a refusal is one JSON reply and one log entry, and names what was refused', async () => {
  const { reply, entries } = await served('poracle-gate 1 restart a;id', []);
  assert.deepStrictEqual(reply, {
    gate: 1, version: gate.VERSION, ok: false, verb: null, error: 'bad-syntax',
    message: 'character ";" is not allowed in a command',
  });
  assert.deepStrictEqual(entries, [{
    event: 'refused', error: 'bad-syntax', message: reply.message, command: 'poracle-gate 1 restart a;id', command_bytes: 27,
  }]);
});

test('serve: hello answers with the verbs allowed; a verb not allowed is refused as such', async () => {
  const hello = await served('poracle-gate 1 hello', ['--allow=hello,processes']);
  assert.strictEqual(hello.reply.ok, true);
  assert.deepStrictEqual(hello.reply.verbs, ['hello', 'processes']);
  assert.deepStrictEqual(hello.reply.protocols, [1]);
  assert.deepStrictEqual(hello.entries.map((e) => e.event), ['accepted', 'done']);
  const logs = await served('poracle-gate 1 logs a 5', ['--allow=hello,processes']);
  assert.strictEqual(logs.reply.error, 'not-allowed');
  assert.deepStrictEqual(logs.reply.verbs, ['hello', 'processes']);
  assert.deepStrictEqual(logs.entries, [{
    event: 'refused', error: 'not-allowed', message: logs.reply.message, verb: 'logs', args: ['a', '5'],
  }]);
});

test('serve: a jlist that fails after printing the list quotes pm2\'s words, never the environment', async () => {
  const list = JSON.stringify([{ name: 'a', pm_id: 0, pm2_env: { status: 'online', HOOK: 'plain-value-17' } }]);
  const pm2 = executable(path.join(tempDir(), 'pm2'),
    "#!/bin/sh\necho '[PM2] Spawning PM2 daemon'\necho '" + list + "'\necho '" + list.slice(0, 60) + "'\n" +
    "echo '[PM2][ERROR] Daemon gone' >&2\nexit 3\n");
  const { reply, entries } = await served('poracle-gate 1 processes', ['--pm2=' + pm2]);
  assert.strictEqual(reply.error, 'pm2-failed');
  assert.strictEqual(reply.message, 'pm2 jlist exited 3: [PM2] Spawning PM2 daemon');
  assert.ok(!JSON.stringify([reply, entries]).includes('plain-value-17'));
});

test('serve: no pm2 is a clear failure, and a bad option refuses everything', async () => {
  const { reply, entries } = await served('poracle-gate 1 processes', ['--pm2=/nonexistent/pm2']);
  assert.strictEqual(reply.error, 'no-pm2');
  assert.strictEqual(entries[entries.length - 1].event, 'failed');
  assert.strictEqual((await served('poracle-gate 1 hello', ['--allow=everything'])).reply.error, 'bad-config');
});
