"""Issue 14's outsider attacks at full scale against the relay and agent binaries.

    python3 bench/security_attacks.py [PORT] [skip1] [skip3]

Uses HT_BIN_DIR (default target/debug) and scratch files in /tmp/attack;
needs `prlimit` (util-linux) for the nofile=1024 run. Linux only (127.0.0.2
as the legitimate sender's source address). Prints one line per figure.
"""
import asyncio, os, subprocess, sys, time, signal
ROOT=os.environ.get('HT_BIN_DIR','target/debug')
os.makedirs('/tmp/attack',exist_ok=True)
RELAY_PORT=int(sys.argv[1]) if len(sys.argv)>1 else 18080
APP_PORT=RELAY_PORT+1
def rss(pid):
    return int(open(f'/proc/{pid}/status').read().split('VmRSS:')[1].split()[0])
async def app_handler(r, w):
    try:
        while True:
            head=await r.readuntil(b'\r\n\r\n')
            cl=0
            for line in head.split(b'\r\n'):
                if line.lower().startswith(b'content-length:'): cl=int(line.split(b':')[1])
            if cl: await r.readexactly(cl)
            w.write(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'); await w.drain()
    except Exception: pass
    w.close()
async def http(method, path, body=b'', src='127.0.0.2', timeout=30):
    t=time.monotonic()
    try:
        r,w=await asyncio.wait_for(asyncio.open_connection('127.0.0.1',RELAY_PORT,local_addr=(src,0)),timeout)
        w.write(f'{method} {path} HTTP/1.1\r\nHost: r\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n'.encode())
        await w.drain()
        try:
            w.write(body); await w.drain()
        except Exception: pass
        data=b''
        try:
            while True:
                chunk=await asyncio.wait_for(r.read(65536),timeout)
                if not chunk: break
                data+=chunk
        except ConnectionResetError: pass
        w.close()
        st=int(data.split(b' ')[1]) if data else 0
    except Exception as e:
        st=str(type(e).__name__)
    return st, round((time.monotonic()-t)*1000)
async def wait_tunnel(n):
    for _ in range(300):
        st,_=await http('GET','/_hooktunnel/health')
        r,w=await asyncio.open_connection('127.0.0.1',RELAY_PORT,local_addr=('127.0.0.2',0))
        w.write(b'GET /_hooktunnel/health HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n'); await w.drain()
        d=await r.read(); w.close()
        if f'"tunnels":{n}'.encode() in d: return
        await asyncio.sleep(0.1)
    raise SystemExit('tunnel not up')
def start_relay(extra, nofile=None):
    cmd=[f'{ROOT}/hooktunnel-relay','--listen',f'127.0.0.1:{RELAY_PORT}','--data-dir','/tmp/attack/data','--rate-per-ip','off','--rate-per-tunnel','off']+extra
    if nofile: cmd=['prlimit',f'--nofile={nofile}']+cmd
    return subprocess.Popen(cmd, stdout=open('/tmp/attack/relay.log','a'), stderr=subprocess.STDOUT, env={**os.environ,'RUST_LOG':'info'})
def start_agent():
    env={**os.environ,'HOOKTUNNEL_HOME':'/tmp/attack/home'}
    return subprocess.Popen([f'{ROOT}/hooktunnel','listen','--relay',f'http://127.0.0.1:{RELAY_PORT}','--name','victim-hooks',str(APP_PORT)],stdin=subprocess.DEVNULL,stdout=open('/tmp/attack/agent.log','w'),stderr=subprocess.STDOUT,env=env)
async def row1(relay):
    conns=[]; statuses={}
    t0=time.monotonic()
    for _ in range(1050):
        try:
            r,w=await asyncio.open_connection('127.0.0.1',RELAY_PORT,local_addr=('127.0.0.1',0))
            w.write(b'POST /t/victim-hooks/x HTTP/1.1\r\nHost: r\r\nContent-Length: 100\r\n\r\nx'); await w.drain()
            conns.append((r,w))
        except Exception as e:
            statuses['connect_'+type(e).__name__]=statuses.get('connect_'+type(e).__name__,0)+1
    print('row1: opened', len(conns), 'in', round(time.monotonic()-t0,2),'s; relay RSS KiB', rss(relay.pid))
    probes=[]
    async def probe_loop():
        for _ in range(17):
            probes.append(await http('POST','/t/victim-hooks/probe',b'legit'))
            await asyncio.sleep(0.5)
    async def read_one(r):
        try:
            d=await asyncio.wait_for(r.read(200),30)
            return (int(d.split(b' ')[1]) if d else 'closed', round((time.monotonic()-t0)*1000))
        except Exception as e: return (type(e).__name__, None)
    res=await asyncio.gather(probe_loop(), *[read_one(r) for r,_ in conns])
    for st,ms in res[1:]:
        statuses[st]=statuses.get(st,0)+1
    cut=[ms for st,ms in res[1:] if st==408]
    print('row1: attacker statuses', statuses, '; 408s after ms', (min(cut),max(cut)) if cut else None)
    ok=sum(1 for s,_ in probes if s==200)
    print('row1: legit probes from 127.0.0.2:', ok,'of',len(probes),'got 200; latencies ms', sorted(ms for _,ms in probes)[::4])
    print('row1: relay RSS KiB after', rss(relay.pid))
    for _,w in conns: w.close()
async def row2(relay):
    big={}; small={}
    body=b'B'*(10*1024*1024)
    t0=time.monotonic()
    for _ in range(26):
        r,w=await asyncio.open_connection('127.0.0.1',RELAY_PORT,local_addr=('127.0.0.1',0))
        w.write(f'POST /t/victim-hooks/big HTTP/1.1\r\nHost: r\r\nContent-Length: {len(body)}\r\n\r\n'.encode()+body[:65536])
        await w.drain()
        d=await asyncio.wait_for(r.read(4096),10); w.close()
        st=int(d.split(b' ')[1]) if d else 0
        big[st]=big.get(st,0)+1
    mid={}
    one=b'M'*(1000*1000)
    for _ in range(100):
        st,_=await http('POST','/t/victim-hooks/mid',one,src='127.0.0.1'); mid[st]=mid.get(st,0)+1
    print('row2: 100 x 1 MB from one address ->', mid)
    for _ in range(88):
        st,_=await http('POST','/t/victim-hooks/small',b'{"x":1}',src='127.0.0.1'); small[st]=small.get(st,0)+1
    legit={}
    for _ in range(10):
        st,_=await http('POST','/t/victim-hooks/real',b'{"real":true}'); legit[st]=legit.get(st,0)+1
    print('row2: 26 x 10 MiB ->',big,'; 88 small ->',small,'; 10 legit from 127.0.0.2 ->',legit,'; took',round(time.monotonic()-t0,1),'s; RSS KiB',rss(relay.pid))
async def row3(relay):
    conns=[]; t0=time.monotonic()
    for _ in range(1100):
        try:
            r,w=await asyncio.open_connection('127.0.0.1',RELAY_PORT,local_addr=('127.0.0.1',0)); conns.append((r,w))
        except Exception as e: pass
    await asyncio.sleep(0.5)
    async def closed(r):
        try:
            d=await asyncio.wait_for(r.read(1),1.0); return d==b''
        except asyncio.TimeoutError: return False
        except Exception: return True
    c=await asyncio.gather(*[closed(r) for r,_ in conns])
    lat=[await http('GET','/_hooktunnel/health') for _ in range(5)]
    print('row3: opened',len(conns),'idle conns;',sum(c),'closed by the relay at accept; legit health from 127.0.0.2:',lat)
    for _,w in conns: w.close()
async def main():
    os.system('rm -rf /tmp/attack/data /tmp/attack/home /tmp/attack/relay.log')
    srv=await asyncio.start_server(app_handler,'127.0.0.1',APP_PORT)
    relay=start_relay([]); await asyncio.sleep(1)
    agent=start_agent(); await wait_tunnel(1)
    if 'skip1' not in sys.argv: await row1(relay)
    agent.send_signal(signal.SIGINT); agent.wait(timeout=20); await wait_tunnel(0)
    await row2(relay)
    relay.send_signal(signal.SIGTERM); relay.wait(timeout=30)
    if 'skip3' in sys.argv: return
    relay=start_relay([], nofile='1024:1024'); await asyncio.sleep(1)
    await row3(relay)
    relay.send_signal(signal.SIGTERM); relay.wait(timeout=30)
    # Without the cap, at nofile=1024 accepts fail (EMFILE): the relay must back off and log rarely.
    before=open('/tmp/attack/relay.log').read().count('accept failed')
    relay=start_relay(['--max-conns-per-ip','100000'], nofile='1024:1024'); await asyncio.sleep(1)
    t0=time.process_time()
    await row3(relay)
    cpu=sum(int(x) for x in open(f'/proc/{relay.pid}/stat').read().split(')')[1].split()[11:13])
    print('row3 (cap off, nofile 1024): relay CPU ticks used', cpu)
    relay.send_signal(signal.SIGTERM); relay.wait(timeout=30)
    after=open('/tmp/attack/relay.log').read().count('accept failed')
    print('row3 (cap off): accept-failed log lines', after-before)
    log=open('/tmp/attack/relay.log').read()
    print('relay log: accept-failed lines', log.count('accept failed'), '; total lines', log.count('\n'))
asyncio.run(main())
