using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>The async state machines of ZcProxy.Core on the calling stack: how tests show that a path ran without one.</summary>
public static class AsyncFrames
{
    /// <summary>
    /// The types of ZcProxy.Core's <c>MoveNext</c> frames below the caller's <paramref name="skipFrames"/> innermost
    /// frames (1: the calling method itself) up to the first frame of <paramref name="stopAt"/> (the test's assembly: the path's caller).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // its own frame is the first one skipped
    public static string[] OfCore(Assembly stopAt, int skipFrames)
    {
        var core = typeof(ZcProxy.Core.Output.SpliceMove).Assembly;
        var found = new List<string>();
        foreach (var frame in new StackTrace(skipFrames + 1, false).GetFrames())
        {
            if (frame.GetMethod() is not { DeclaringType: { } type } method) continue;
            if (type.Assembly == stopAt) break;
            if (type.Assembly == core && method.Name == "MoveNext") found.Add(type.FullName ?? type.Name);
        }
        return [.. found];
    }
}
