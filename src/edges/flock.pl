# Takes flock(2) locks without blocking on descriptors this process inherited
# (started by flock.ts, which hands it the descriptors as 3, 4, 5, ...): one
# process for a whole batch, where flock(1) would cost a spawn per descriptor.
# Arguments: the mode (1 shared, 2 exclusive: flock(2)'s LOCK_SH and LOCK_EX),
# then the descriptors. Prints a line per descriptor, in order: L (locked) or
# B (busy: another open file holds a conflicting lock); dies on anything else.
use strict;
# flock(2)'s operations are fixed by the kernel's ABI on every Linux
# architecture; loading Fcntl (or `constant`) to name them would cost more
# than the locks of a whole batch. Errno is loaded (through %!) only when a
# lock is busy.
my $LOCK_NB = 4;

my $mode = shift @ARGV;
for my $fd (@ARGV) {
  open(my $fh, '<&=', $fd) or die "fd $fd: $!\n";
  if (flock($fh, $mode | $LOCK_NB)) { print "L\n" }
  elsif ($!{EWOULDBLOCK}) { print "B\n" }
  else { die "flock fd $fd: $!\n" }
}
