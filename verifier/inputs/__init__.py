"""Model files -> environments: mazes (maze, maze_compile, maze_generate), PRISM (prism),
Gymnasium (gym_spec, gym, minigrid, toytext), one table of readers (load)."""
