# Takes flock(2) locks without blocking on descriptors this process inherited
# (started by flock.ts, which hands it the descriptors as 3, 4, 5, ...): one
# process for a whole batch, where flock(1) would cost a spawn per descriptor.
# Arguments: the mode (1 shared, 2 exclusive: Fcntl's LOCK_SH and LOCK_EX),
# then the descriptors. Prints a line per descriptor, in order: L (locked) or
# B (busy: another open file holds a conflicting lock); dies on anything else.
use strict;
use Fcntl ':flock';

my $mode = shift @ARGV;
for my $fd (@ARGV) {
  open(my $fh, '<&=', $fd) or die "fd $fd: $!\n";
  if (flock($fh, $mode | LOCK_NB)) { print "L\n" }
  elsif ($!{EWOULDBLOCK}) { print "B\n" }
  else { die "flock fd $fd: $!\n" }
}
