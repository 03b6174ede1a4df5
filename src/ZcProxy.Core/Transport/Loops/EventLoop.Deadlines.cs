namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// The loop's deadlines (<see cref="LoopDeadline"/>): an intrusive list under one lock, so arming and disarming are O(1)
/// and allocate nothing, plus the earliest due time, which becomes epoll_wait's timeout. A disarmed deadline does not
/// raise that bound (the next sweep recomputes it), so a timeout that almost never fires costs one early sweep per
/// timeout period, not one per request. Expired deadlines run their callbacks on the loop thread, after the sweep.
/// </summary>
internal sealed partial class EventLoop
{
    private readonly Lock _deadlineLock = new();
    private readonly List<LoopDeadline> _expired = []; // loop thread only
    private LoopDeadline? _armed;
    private long _earliestDue = long.MaxValue; // a lower bound of the armed dues; MaxValue: none armed

    /// <summary>Deadlines armed right now (for tests).</summary>
    public int ArmedDeadlineCount
    {
        get
        {
            lock (_deadlineLock)
            {
                int n = 0;
                for (var d = _armed; d is not null; d = d.Next) n++;
                return n;
            }
        }
    }

    /// <summary>Arms <paramref name="deadline"/> to expire <paramref name="after"/> from now (re-arming moves it). Any thread.</summary>
    public void Arm(LoopDeadline deadline, TimeSpan after)
    {
        if (deadline.Loop is { } other && other != this) other.Disarm(deadline);
        long due = _time.GetTimestamp() + (long)(after.TotalSeconds * _time.TimestampFrequency);
        bool earliest;
        lock (_deadlineLock)
        {
            if (deadline.Loop == this) Unlink(deadline);
            deadline.Due = due;
            deadline.Previous = null;
            deadline.Next = _armed;
            if (_armed is not null) _armed.Previous = deadline;
            _armed = deadline;
            Volatile.Write(ref deadline.Loop, this);
            earliest = due < _earliestDue;
            if (earliest) Volatile.Write(ref _earliestDue, due);
        }
        // The loop may be asleep in epoll_wait with a later timeout (or none): wake it to wait less. On the loop
        // thread the next epoll_wait already sees the new bound.
        if (earliest && !IsLoopThread) Post(static _ => { }, null);
    }

    internal void Disarm(LoopDeadline deadline)
    {
        lock (_deadlineLock)
        {
            if (deadline.Loop != this) return;
            Unlink(deadline);
            Volatile.Write(ref deadline.Loop, null);
        }
    }

    private void Unlink(LoopDeadline deadline)
    {
        if (deadline.Previous is { } previous) previous.Next = deadline.Next; else _armed = deadline.Next;
        if (deadline.Next is { } next) next.Previous = deadline.Previous;
        deadline.Previous = deadline.Next = null;
    }

    /// <summary>epoll_wait's timeout: until the earliest deadline (rounded up to a millisecond), or -1 when none is armed.</summary>
    private int DeadlineWaitMilliseconds()
    {
        long earliest = Volatile.Read(ref _earliestDue);
        if (earliest == long.MaxValue) return -1;
        long left = earliest - _time.GetTimestamp();
        if (left <= 0) return 0;
        return (int)Math.Min(Math.Ceiling(left * 1000.0 / _time.TimestampFrequency), int.MaxValue);
    }

    /// <summary>On the loop thread, after each wait: expires what is due, recomputes the bound.</summary>
    private void SweepDeadlines()
    {
        long earliest = Volatile.Read(ref _earliestDue);
        if (earliest == long.MaxValue) return;
        // The real clock's reading of this turn (one per turn); what became due during the turn expires on the next.
        long now = ReferenceEquals(_time, TimeProvider.System) ? TurnStarted : _time.GetTimestamp();
        if (earliest > now) return;
        lock (_deadlineLock)
        {
            long next = long.MaxValue;
            for (var d = _armed; d is not null;)
            {
                var following = d.Next;
                if (d.Due <= now)
                {
                    Unlink(d);
                    Volatile.Write(ref d.Loop, null);
                    _expired.Add(d);
                }
                else next = Math.Min(next, d.Due);
                d = following;
            }
            Volatile.Write(ref _earliestDue, next);
        }
        foreach (var d in _expired)
        {
            try { d.Expired(d.State); }
            catch (Exception e) when (_log is not null) { LogContinuationFailed(_log, Index, e); }
        }
        _expired.Clear();
    }
}
